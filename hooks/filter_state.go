package hooks

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math"
	"os"
	"path/filepath"
	"time"
)

// StateFile is the store-on-change snapshot's file name in the data dir.
const StateFile = "store-on-change.state"

// The snapshot format, version 1, all integers big-endian or varint:
//
//	magic "SLSOC\x00\x00\x01" | saved-at unix ns (8) | uvarint blocks |
//	blocks × (uvarint n | n × (uvarint key length | key | value float64 bits (8) |
//	          varint reading-time unix ns)) |
//	CRC-32 (IEEE) of everything before (4)
//
// A block is one shard's series, least recently used first, so loading them in order restores
// the LRU order. Only series with a kept value are written; their rules come from the
// configuration of the process that loads them. A series takes its key plus about 12 bytes.
var stateMagic = []byte("SLSOC\x00\x00\x01")

// ErrStateCorrupt is returned by LoadState for a snapshot that is truncated or damaged.
var ErrStateCorrupt = errors.New("store-on-change state is corrupt")

// SaveState writes the state to path atomically (a temporary file, fsync, rename), unless no
// value was kept since the last save. It is safe to call while the filter is in use: each
// shard is encoded under its lock (ingest on that shard waits that long, about 1/16 of the
// whole), and the uplinks stored meanwhile are after saved-at, which is taken before the
// first shard, so a replay from saved-at covers them. Not safe for concurrent SaveState calls.
func (f *Filter) SaveState(path string) error {
	commits := f.commits.Load()
	if commits == f.savedCommits.Load() && f.savedOnce.Load() {
		return nil
	}
	err := writeFileAtomic(path, func(w io.Writer) error {
		crc := crc32.NewIEEE()
		bw := bufio.NewWriterSize(io.MultiWriter(w, crc), 64<<10)
		bw.Write(stateMagic)
		bw.Write(binary.BigEndian.AppendUint64(nil, uint64(time.Now().UnixNano())))
		bw.Write(binary.AppendUvarint(nil, uint64(len(f.series.shards))))
		for i := range f.series.shards {
			f.block = f.series.shards[i].encode(f.block[:0])
			if _, err := bw.Write(f.block); err != nil {
				return err
			}
		}
		if err := bw.Flush(); err != nil {
			return err
		}
		_, err := w.Write(crc.Sum(nil))
		return err
	})
	if err != nil {
		f.m.snapshots.WithLabelValues("error").Inc()
		return fmt.Errorf("save store-on-change state: %w", err)
	}
	f.m.snapshots.WithLabelValues("ok").Inc()
	f.savedCommits.Store(commits)
	f.savedOnce.Store(true)
	return nil
}

// encode appends the shard's block to buf.
func (sh *shard) encode(buf []byte) []byte {
	sh.mu.Lock()
	defer sh.mu.Unlock()
	n := 0
	for j := sh.tail; j >= 0; j = sh.s[j].prev {
		if e := &sh.s[j]; e.kept && e.rule != offRule {
			n++
		}
	}
	buf = binary.AppendUvarint(buf, uint64(n))
	for j := sh.tail; j >= 0; j = sh.s[j].prev {
		e := &sh.s[j]
		if !e.kept || e.rule == offRule {
			continue
		}
		buf = binary.AppendUvarint(buf, uint64(len(e.key)))
		buf = append(buf, e.key...)
		buf = binary.BigEndian.AppendUint64(buf, math.Float64bits(e.last))
		buf = binary.AppendVarint(buf, e.at)
	}
	return buf
}

func writeFileAtomic(path string, write func(io.Writer) error) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".*.tmp")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // after a successful rename this fails harmlessly
	if err := write(tmp); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	if dir, err := os.Open(filepath.Dir(path)); err == nil {
		dir.Sync() // make the rename durable; not every filesystem supports it
		dir.Close()
	}
	return nil
}

// LoadState reads a snapshot written by SaveState into an unused filter and returns when it
// was saved and how many series it held. A missing file is not an error: it returns the zero
// time. A damaged one returns an error wrapping ErrStateCorrupt and loads nothing.
func (f *Filter) LoadState(path string) (savedAt time.Time, n int, err error) {
	raw, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return time.Time{}, 0, nil
	}
	if err != nil {
		return time.Time{}, 0, fmt.Errorf("load store-on-change state: %w", err)
	}
	corrupt := func(what string) (time.Time, int, error) {
		return time.Time{}, 0, fmt.Errorf("load %s: %w: %s", path, ErrStateCorrupt, what)
	}
	if len(raw) < len(stateMagic)+8+1+4 || !bytes.Equal(raw[:len(stateMagic)], stateMagic) {
		return corrupt("not a version 1 snapshot")
	}
	body, sum := raw[:len(raw)-4], binary.BigEndian.Uint32(raw[len(raw)-4:])
	if crc32.ChecksumIEEE(body) != sum {
		return corrupt("checksum mismatch")
	}
	r := bytes.NewReader(body[len(stateMagic)+8:])
	savedAt = time.Unix(0, int64(binary.BigEndian.Uint64(body[len(stateMagic):])))
	blocks, err := binary.ReadUvarint(r)
	if err != nil || blocks > 1<<16 {
		return corrupt("bad block count")
	}
	type entry struct {
		key  []byte
		last float64
		at   int64
	}
	var entries []entry
	for range blocks {
		count, err := binary.ReadUvarint(r)
		if err != nil || count > uint64(len(body)) {
			return corrupt("bad series count")
		}
		for range count {
			klen, err := binary.ReadUvarint(r)
			if err != nil || klen > uint64(len(body)) {
				return corrupt("bad key length")
			}
			e := entry{key: make([]byte, klen)}
			var bits [8]byte
			if _, err := io.ReadFull(r, e.key); err != nil {
				return corrupt("truncated key")
			}
			if _, err := io.ReadFull(r, bits[:]); err != nil {
				return corrupt("truncated value")
			}
			e.last = math.Float64frombits(binary.BigEndian.Uint64(bits[:]))
			if e.at, err = binary.ReadVarint(r); err != nil {
				return corrupt("truncated time")
			}
			entries = append(entries, e)
		}
	}
	if r.Len() != 0 {
		return corrupt("trailing bytes")
	}
	for _, e := range entries {
		sh := f.series.shard(e.key)
		sh.mu.Lock()
		s := sh.get(e.key)
		if s == nil {
			s, _ = sh.add(e.key)
		}
		s.last, s.at, s.kept, s.rule = e.last, e.at, true, nil
		sh.mu.Unlock()
	}
	return savedAt, len(entries), nil
}

// RunSnapshots saves the state to path every interval until ctx is cancelled. It does not
// save on return: the owner saves once more after intake has stopped. A failed save is
// reported through onError and retried at the next tick.
func (f *Filter) RunSnapshots(ctx context.Context, path string, interval time.Duration, onError func(error)) {
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			if err := f.SaveState(path); err != nil {
				onError(err)
			}
		}
	}
}
