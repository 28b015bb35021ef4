package mode

import (
	"slices"
	"testing"
)

func TestTable(t *testing.T) {
	m, err := Lookup("proxy")
	if err != nil {
		t.Fatal(err)
	}
	if role, ok := m.RoleFor("INVITE"); !ok || role != RoleProxy {
		t.Fatalf("proxy INVITE → %q %v", role, ok)
	}
	if role, ok := m.RoleFor("MESSAGE"); !ok || role != RoleProxy {
		t.Fatalf("proxy MESSAGE → %q %v: the proxy forwards every method but REGISTER and OPTIONS", role, ok)
	}
	if role, ok := m.RoleForUser("OPTIONS"); !ok || role != RoleProxy {
		t.Fatalf("proxy OPTIONS for a user → %q %v: the proxy forwards it to the user", role, ok)
	}
	if _, ok := m.RoleForUser("INVITE"); ok {
		t.Fatal("proxy INVITE has a user route besides its own")
	}
	if _, ok := m.RoleFor("PUBLISH"); ok {
		t.Fatal("proxy serves PUBLISH")
	}
	if got := m.Roles(); !slices.Equal(got, []string{RoleRegistrar, RoleProxy, RoleUAS}) {
		t.Fatalf("roles %v", got)
	}
	if _, err := Lookup("bogus"); err == nil {
		t.Fatal("unknown mode accepted")
	}
	if len(Names()) != 7 {
		t.Fatalf("want the seed's 7 modes, got %v", Names())
	}
	for _, name := range Names() {
		m, _ := Lookup(name)
		if r, ok := m.RoleFor("OPTIONS"); !ok || r != RoleUAS {
			t.Errorf("%s: OPTIONS not served by the uas", name)
		}
	}
}
