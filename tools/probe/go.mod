module github.com/siphon-lab/siphon/tools/probe

go 1.26.0
