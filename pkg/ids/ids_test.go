package ids

import (
	"strings"
	"testing"
)

func draw(g *Generator) []string {
	return []string{g.Branch(), g.Tag(), g.CallID("example.com"), g.Branch()}
}

func TestSeededIsReproducible(t *testing.T) {
	a, b := draw(New("42", "uas")), draw(New("42", "uas"))
	for i := range a {
		if a[i] != b[i] {
			t.Fatalf("same seed and stream differ at %d: %s vs %s", i, a[i], b[i])
		}
	}
	if c := draw(New("43", "uas")); c[0] == a[0] {
		t.Fatal("different seeds gave the same branch")
	}
	if d := draw(New("42", "edge")); d[0] == a[0] {
		t.Fatal("different streams gave the same branch")
	}
}

func TestFormats(t *testing.T) {
	for _, g := range []*Generator{New("", "x"), New("7", "x")} {
		if b := g.Branch(); !strings.HasPrefix(b, BranchCookie) || len(b) != len(BranchCookie)+20 {
			t.Errorf("branch %q", b)
		}
		if tag := g.Tag(); len(tag) != 16 {
			t.Errorf("tag %q", tag)
		}
		if id := g.CallID("h"); !strings.HasSuffix(id, "@h") {
			t.Errorf("call-id %q", id)
		}
	}
	if r := New("", "x"); r.Seeded() || r.Tag() == r.Tag() {
		t.Error("unseeded generator is not random")
	}
}

func TestFromEnv(t *testing.T) {
	t.Setenv(SeedEnv, "99")
	if !FromEnv("s").Seeded() || FromEnv("s").Tag() != New("99", "s").Tag() {
		t.Fatal("SIPHON_ID_SEED not honoured")
	}
}
