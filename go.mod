module github.com/key-ip-sentinel/sentinel

go 1.25
