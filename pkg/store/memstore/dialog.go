package memstore

import (
	"container/heap"
	"context"
	"encoding/json"
	"sync"
	"time"

	"github.com/siphon-lab/siphon/pkg/store"
)

// dialogs keeps each dialog as its JSON, as Redis does: a caller's copy never
// aliases the stored one, and the two backends fail the same way on what does
// not encode. The due index is a heap, as Redis's is a sorted set: a sweep
// looks only at what is due, however many calls are up.
type dialogs struct {
	now func() time.Time

	mu    sync.Mutex
	items map[string]*storedDialog
	due   dueHeap
}

type storedDialog struct {
	id      string
	data    []byte
	version int64
	due     time.Time
	expires time.Time
	index   int // position in the due heap; -1 when not in it (no Due, or handed out)
}

func (it *storedDialog) decode() (*store.Dialog, error) {
	var d store.Dialog
	if err := json.Unmarshal(it.data, &d); err != nil {
		return nil, err
	}
	return &d, nil
}

// dueHeap orders dialogs by Due (container/heap).
type dueHeap []*storedDialog

func (h dueHeap) Len() int           { return len(h) }
func (h dueHeap) Less(i, j int) bool { return h[i].due.Before(h[j].due) }
func (h dueHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].index, h[j].index = i, j
}
func (h *dueHeap) Push(x any) {
	it := x.(*storedDialog)
	it.index = len(*h)
	*h = append(*h, it)
}
func (h *dueHeap) Pop() any {
	old := *h
	it := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	it.index = -1
	return it
}

func newDialogs(now func() time.Time) *dialogs {
	return &dialogs{now: now, items: map[string]*storedDialog{}}
}

// remove drops it from the map and the heap; the caller holds mu.
func (s *dialogs) remove(it *storedDialog) {
	delete(s.items, it.id)
	if it.index >= 0 {
		heap.Remove(&s.due, it.index)
	}
}

// live returns id's dialog unless it expired; the caller holds mu.
func (s *dialogs) live(id string, now time.Time) (*storedDialog, bool) {
	it, ok := s.items[id]
	if ok && !it.expires.IsZero() && !now.Before(it.expires) {
		s.remove(it)
		return nil, false
	}
	return it, ok
}

// put stores d over whatever was stored under its id; the caller holds mu.
func (s *dialogs) put(d *store.Dialog) error {
	data, err := json.Marshal(d)
	if err != nil {
		return err
	}
	if old, ok := s.items[d.ID]; ok {
		s.remove(old)
	}
	it := &storedDialog{id: d.ID, data: data, version: d.Version, due: d.Due, expires: d.Expires, index: -1}
	s.items[d.ID] = it
	if !d.Due.IsZero() {
		heap.Push(&s.due, it)
	}
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
	if ok {
		s.remove(it)
	}
	s.mu.Unlock()
	if !ok {
		return nil, store.ErrDialogNotFound
	}
	return it.decode()
}

// Due pops what is due off the heap: a popped dialog is handed out once, and
// due again only when Update gives it a Due.
func (s *dialogs) Due(_ context.Context, now time.Time, limit int) ([]*store.Dialog, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []*store.Dialog
	for len(out) < limit && s.due.Len() > 0 && !s.due[0].due.After(now) {
		it := heap.Pop(&s.due).(*storedDialog)
		if _, ok := s.live(it.id, s.now()); !ok {
			continue
		}
		d, err := it.decode()
		if err != nil {
			return out, err
		}
		out = append(out, d)
	}
	return out, nil
}
