module gctracegen

go 1.19
