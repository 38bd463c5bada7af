module memspike/reference/catalogue

go 1.19
