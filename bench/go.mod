module github.com/siphon-lab/siphon/bench

go 1.26.0
