module memspike/reference/ownheap

go 1.19
