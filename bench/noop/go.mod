module github.com/key-ip-sentinel/noop

go 1.22
