module memspike/reference/go

go 1.19
