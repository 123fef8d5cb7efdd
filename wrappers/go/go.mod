module github.com/ktq/ktq/wrappers/go

go 1.21
