package memstore

import "time"

// timed is an entry of a timeHeap: when it is due, and where it sits.
type timed interface {
	when() time.Time
	setIndex(i int) // -1 when out of the heap
}

// timeHeap orders entries by when they are due (container/heap), as Redis's
// sorted sets do: a sweep looks only at what is due, however much is stored.
type timeHeap[T timed] []T

func (h timeHeap[T]) Len() int           { return len(h) }
func (h timeHeap[T]) Less(i, j int) bool { return h[i].when().Before(h[j].when()) }
func (h timeHeap[T]) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].setIndex(i)
	h[j].setIndex(j)
}

func (h *timeHeap[T]) Push(x any) {
	it := x.(T)
	it.setIndex(len(*h))
	*h = append(*h, it)
}

func (h *timeHeap[T]) Pop() any {
	old := *h
	it := old[len(old)-1]
	var zero T
	old[len(old)-1] = zero
	*h = old[:len(old)-1]
	it.setIndex(-1)
	return it
}
