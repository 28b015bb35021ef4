package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestNoBuildOutputsCommitted: git tracks no binary (an ELF file, or any file
// with a NUL byte in its first 8 KiB: build outputs, test binaries, archives).
func TestNoBuildOutputsCommitted(t *testing.T) {
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("git", "-C", root, "ls-files", "-z").Output()
	if err != nil {
		t.Skipf("not a git checkout (%v): nothing to check", err)
	}
	files := strings.Split(strings.TrimRight(string(out), "\x00"), "\x00")
	for _, name := range files {
		f, err := os.Open(filepath.Join(root, name))
		if err != nil {
			continue // deleted in the work tree
		}
		head := make([]byte, 8192)
		n, _ := f.Read(head)
		f.Close()
		if bytes.HasPrefix(head[:n], []byte("\x7fELF")) || bytes.IndexByte(head[:n], 0) >= 0 {
			t.Errorf("%s is tracked but is binary: remove it and cover it in .gitignore", name)
		}
	}
	if len(files) < 100 {
		t.Fatalf("git lists only %d files under %s", len(files), root)
	}
}
