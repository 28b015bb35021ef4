package memstore

import (
	"context"
	"encoding/json"
	"sync"
	"time"

	"github.com/siphon-lab/siphon/pkg/store"
)

// dialogs keeps each dialog as its JSON, as Redis does: a caller's copy never
// aliases the stored one, and the two backends fail the same way on what does
// not encode.
type dialogs struct {
	now func() time.Time

	mu    sync.Mutex
	items map[string]storedDialog
}

type storedDialog struct {
	data    []byte
	version int64
	due     time.Time
	claimed bool // Due handed it out; not due again until Update sets a Due
	expires time.Time
}

func (it storedDialog) decode() (*store.Dialog, error) {
	var d store.Dialog
	if err := json.Unmarshal(it.data, &d); err != nil {
		return nil, err
	}
	return &d, nil
}

func newDialogs(now func() time.Time) *dialogs {
	return &dialogs{now: now, items: map[string]storedDialog{}}
}

// live returns id's dialog unless it expired; the caller holds mu.
func (s *dialogs) live(id string, now time.Time) (storedDialog, bool) {
	it, ok := s.items[id]
	if ok && !it.expires.IsZero() && !now.Before(it.expires) {
		delete(s.items, id)
		return storedDialog{}, false
	}
	return it, ok
}

func (s *dialogs) put(d *store.Dialog) error {
	data, err := json.Marshal(d)
	if err != nil {
		return err
	}
	s.items[d.ID] = storedDialog{data: data, version: d.Version, due: d.Due, expires: d.Expires}
	return nil
}

func (s *dialogs) Create(_ context.Context, d *store.Dialog) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.live(d.ID, s.now()); ok {
		return store.ErrDialogExists
	}
	d.Version = 1
	return s.put(d)
}

func (s *dialogs) Get(_ context.Context, id string) (*store.Dialog, error) {
	s.mu.Lock()
	it, ok := s.live(id, s.now())
	s.mu.Unlock()
	if !ok {
		return nil, store.ErrDialogNotFound
	}
	return it.decode()
}

func (s *dialogs) Update(_ context.Context, d *store.Dialog) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	it, ok := s.live(d.ID, s.now())
	if !ok {
		return store.ErrDialogNotFound
	}
	if it.version != d.Version {
		return store.ErrDialogConflict
	}
	d.Version++
	if err := s.put(d); err != nil {
		d.Version--
		return err
	}
	return nil
}

func (s *dialogs) Delete(_ context.Context, id string) (*store.Dialog, error) {
	s.mu.Lock()
	it, ok := s.live(id, s.now())
	delete(s.items, id)
	s.mu.Unlock()
	if !ok {
		return nil, store.ErrDialogNotFound
	}
	return it.decode()
}

func (s *dialogs) Due(_ context.Context, now time.Time, limit int) ([]*store.Dialog, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []*store.Dialog
	for id, it := range s.items {
		if len(out) == limit {
			break
		}
		if it.claimed || it.due.IsZero() || it.due.After(now) {
			continue
		}
		if _, ok := s.live(id, s.now()); !ok {
			continue
		}
		d, err := it.decode()
		if err != nil {
			return out, err
		}
		it.claimed = true
		s.items[id] = it
		out = append(out, d)
	}
	return out, nil
}
