package memstore

import (
	"container/heap"
	"context"
	"encoding/json"
	"sync"
	"time"
)

// records is what dialogs and subscriptions share: each kept as its JSON, as
// Redis does (a caller's copy never aliases the stored one, and the two
// backends fail the same way on what does not encode), compare-and-set on a
// version, dropped once expired, and a heap by due time, as Redis's sorted
// set: a sweep looks only at what is due, however much is stored.
type records[T any] struct {
	now  func() time.Time
	meta func(*T) meta
	// groups, when set, names the groups a record is in (a subscription's
	// package and resource, its dialog): members lists a group's records.
	groupsOf func(*T) []string
	// The kind's errors.
	errExists, errNotFound, errConflict error

	mu     sync.Mutex
	items  map[string]*stored[T]
	groups map[string]map[string]bool // group → ids
	due    timeHeap[*stored[T]]
}

// meta is what records read of a value: its id, its version, when it is due
// (zero: never) and when it is gone.
type meta struct {
	id      string
	version *int64
	due     time.Time
	expires time.Time
}

type stored[T any] struct {
	id      string
	groups  []string
	data    []byte
	version int64
	due     time.Time
	expires time.Time
	index   int // position in the due heap; -1 when not in it (no due, or handed out)
}

func (it *stored[T]) when() time.Time { return it.due }
func (it *stored[T]) setIndex(i int)  { it.index = i }

func (it *stored[T]) decode() (*T, error) {
	v := new(T)
	if err := json.Unmarshal(it.data, v); err != nil {
		return nil, err
	}
	return v, nil
}

func newRecords[T any](now func() time.Time, m func(*T) meta, exists, notFound, conflict error) *records[T] {
	return &records[T]{now: now, meta: m, items: map[string]*stored[T]{}, groups: map[string]map[string]bool{},
		errExists: exists, errNotFound: notFound, errConflict: conflict}
}

// remove drops it from the map, the heap and the kind's index; the caller holds mu.
func (r *records[T]) remove(it *stored[T]) {
	delete(r.items, it.id)
	if it.index >= 0 {
		heap.Remove(&r.due, it.index)
	}
	for _, g := range it.groups {
		if ids := r.groups[g]; ids != nil {
			delete(ids, it.id)
			if len(ids) == 0 {
				delete(r.groups, g)
			}
		}
	}
}

// live returns id's record unless it expired; the caller holds mu.
func (r *records[T]) live(id string) (*stored[T], bool) {
	it, ok := r.items[id]
	if ok && !it.expires.IsZero() && !r.now().Before(it.expires) {
		r.remove(it)
		return nil, false
	}
	return it, ok
}

// put stores v over whatever was stored under its id; the caller holds mu.
func (r *records[T]) put(v *T) error {
	m := r.meta(v)
	data, err := json.Marshal(v)
	if err != nil {
		return err
	}
	if old, ok := r.items[m.id]; ok {
		r.remove(old)
	}
	it := &stored[T]{id: m.id, data: data, version: *m.version, due: m.due, expires: m.expires, index: -1}
	r.items[m.id] = it
	if !m.due.IsZero() {
		heap.Push(&r.due, it)
	}
	if r.groupsOf != nil {
		it.groups = r.groupsOf(v)
		for _, g := range it.groups {
			if r.groups[g] == nil {
				r.groups[g] = map[string]bool{}
			}
			r.groups[g][m.id] = true
		}
	}
	return nil
}

// members are the live records of group.
func (r *records[T]) members(group string) ([]*T, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []*T
	for id := range r.groups[group] {
		it, ok := r.live(id)
		if !ok {
			continue
		}
		v, err := it.decode()
		if err != nil {
			return out, err
		}
		out = append(out, v)
	}
	return out, nil
}

// Create stores v with version 1 unless its id is live.
func (r *records[T]) Create(_ context.Context, v *T) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	m := r.meta(v)
	if _, ok := r.live(m.id); ok {
		return r.errExists
	}
	*m.version = 1
	return r.put(v)
}

// Get returns the record id.
func (r *records[T]) Get(_ context.Context, id string) (*T, error) {
	r.mu.Lock()
	it, ok := r.live(id)
	r.mu.Unlock()
	if !ok {
		return nil, r.errNotFound
	}
	return it.decode()
}

// Update stores v if the stored version is v's, incrementing both.
func (r *records[T]) Update(_ context.Context, v *T) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	m := r.meta(v)
	it, ok := r.live(m.id)
	if !ok {
		return r.errNotFound
	}
	if it.version != *m.version {
		return r.errConflict
	}
	*m.version++
	if err := r.put(v); err != nil {
		*m.version--
		return err
	}
	return nil
}

// Delete removes the record id and returns it.
func (r *records[T]) Delete(_ context.Context, id string) (*T, error) {
	r.mu.Lock()
	it, ok := r.live(id)
	if ok {
		r.remove(it)
	}
	r.mu.Unlock()
	if !ok {
		return nil, r.errNotFound
	}
	return it.decode()
}

// takeDue pops what is due off the heap: a popped record is handed out once,
// and due again only when an update gives it a due time.
func (r *records[T]) takeDue(now time.Time, limit int) ([]*T, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []*T
	for len(out) < limit && r.due.Len() > 0 && !r.due[0].due.After(now) {
		it := heap.Pop(&r.due).(*stored[T])
		if _, ok := r.live(it.id); !ok {
			continue
		}
		v, err := it.decode()
		if err != nil {
			return out, err
		}
		out = append(out, v)
	}
	return out, nil
}
