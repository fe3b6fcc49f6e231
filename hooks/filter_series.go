package hooks

import (
	"hash/maphash"
	"sync"
)

// filterShards spreads the series over independently locked shards so that publishers on
// different connections rarely wait for each other. Each shard holds an equal part of
// max_series, so eviction may start slightly before the total reaches it (by about 0.3 % at
// 100,000); below minShardedSeries a single shard holds them all.
const (
	filterShards     = 16
	minShardedSeries = 16 * 1024
)

// series is the remembered state of one (tenant, device, metric): its last kept value. The
// struct is kept small (56 bytes plus the key) because there can be max_series of them.
type series struct {
	key        string // seriesKey(tenant, device, metric)
	last       float64
	at         int64 // unix nanoseconds of the last kept reading's time
	rule       *rule // nil until resolved (entries loaded from a snapshot)
	prev, next int32 // LRU list; -1 ends it
	kept       bool  // last and at hold a kept value
}

// shard is an LRU map of series. Its slice never shrinks: an evicted entry's slot is reused.
type shard struct {
	mu         sync.Mutex
	index      map[string]int32
	s          []series
	head, tail int32 // most and least recently used; -1 when empty
	max        int
}

type seriesSet struct {
	seed   maphash.Seed
	shards []shard
}

func newSeriesSet(max int) *seriesSet {
	count := filterShards
	if max < minShardedSeries {
		count = 1
	}
	ss := &seriesSet{seed: maphash.MakeSeed(), shards: make([]shard, count)}
	for i := range ss.shards {
		n := max / count
		if i < max%count {
			n++
		}
		ss.shards[i] = shard{index: map[string]int32{}, head: -1, tail: -1, max: n}
	}
	return ss
}

// seriesKey appends the key of a series to buf: tenant, device and metric separated by NUL,
// which none of them can contain usefully (topic levels and JSON keys) and which keeps the
// encoding unambiguous.
func seriesKey(buf []byte, tenant, device, metric string) []byte {
	buf = append(buf, tenant...)
	buf = append(buf, 0)
	buf = append(buf, device...)
	buf = append(buf, 0)
	return append(buf, metric...)
}

func (ss *seriesSet) shard(key []byte) *shard {
	if len(ss.shards) == 1 {
		return &ss.shards[0]
	}
	return &ss.shards[maphash.Bytes(ss.seed, key)%uint64(len(ss.shards))]
}

// get returns the series of key, most recently used now, or nil. The caller holds sh.mu; the
// pointer is valid until it releases it.
func (sh *shard) get(key []byte) *series {
	i, ok := sh.index[string(key)]
	if !ok {
		return nil
	}
	sh.touch(i)
	return &sh.s[i]
}

// peek is get without making the series the most recently used.
func (sh *shard) peek(key []byte) *series {
	if i, ok := sh.index[string(key)]; ok {
		return &sh.s[i]
	}
	return nil
}

// add inserts key as the most recently used series and reports whether the least recently
// used one was evicted to make room. The caller holds sh.mu and has checked get first.
func (sh *shard) add(key []byte) (e *series, evicted bool) {
	var i int32
	if len(sh.s) < sh.max {
		sh.s = append(sh.s, series{})
		i = int32(len(sh.s) - 1)
	} else {
		if sh.max == 0 {
			return &series{}, true // a shard with no room tracks nothing
		}
		i = sh.tail
		sh.unlink(i)
		delete(sh.index, sh.s[i].key)
		evicted = true
	}
	sh.s[i] = series{key: string(key), prev: -1, next: -1}
	sh.index[sh.s[i].key] = i
	sh.pushFront(i)
	return &sh.s[i], evicted
}

func (sh *shard) touch(i int32) {
	if sh.head == i {
		return
	}
	sh.unlink(i)
	sh.pushFront(i)
}

func (sh *shard) unlink(i int32) {
	e := &sh.s[i]
	if e.prev >= 0 {
		sh.s[e.prev].next = e.next
	} else {
		sh.head = e.next
	}
	if e.next >= 0 {
		sh.s[e.next].prev = e.prev
	} else {
		sh.tail = e.prev
	}
	e.prev, e.next = -1, -1
}

func (sh *shard) pushFront(i int32) {
	e := &sh.s[i]
	e.prev, e.next = -1, sh.head
	if sh.head >= 0 {
		sh.s[sh.head].prev = i
	}
	sh.head = i
	if sh.tail < 0 {
		sh.tail = i
	}
}

// len returns the number of tracked series.
func (ss *seriesSet) len() int {
	n := 0
	for i := range ss.shards {
		sh := &ss.shards[i]
		sh.mu.Lock()
		n += len(sh.index)
		sh.mu.Unlock()
	}
	return n
}
