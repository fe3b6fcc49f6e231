package decoders

import (
	"context"
	"fmt"
)

// pool holds the runtimes of one compiled script. At most size runtimes exist at a time, each
// used by one goroutine at a time; a runtime is never shared with another script.
type pool struct {
	slots chan struct{} // one token per runtime in use or being created
	idle  chan *vm
	newVM func() (*vm, error)
	// discarded, when set, is told of each broken runtime dropped.
	discarded func()
}

func newPool(size int, newVM func() (*vm, error)) *pool {
	return &pool{slots: make(chan struct{}, size), idle: make(chan *vm, size), newVM: newVM}
}

// get returns a runtime for the caller's exclusive use, waiting while all are busy until ctx
// ends. The caller must hand it back with put.
func (p *pool) get(ctx context.Context) (*vm, error) {
	select {
	case p.slots <- struct{}{}:
	default:
		select {
		case p.slots <- struct{}{}:
		case <-ctx.Done():
			return nil, fmt.Errorf("%w: %v", ErrBusy, ctx.Err())
		}
	}
	select {
	case v := <-p.idle:
		return v, nil
	default:
	}
	v, err := p.newVM()
	if err != nil {
		<-p.slots
		return nil, err
	}
	return v, nil
}

// put returns a runtime; a broken one (interrupted, panicked) is dropped, never reused.
func (p *pool) put(v *vm) {
	if !v.broken {
		p.idle <- v // never blocks: idle plus in-use runtimes never exceed size
	} else if p.discarded != nil {
		p.discarded()
	}
	<-p.slots
}

// add gives the pool a runtime created outside get (the one that validated the script).
func (p *pool) add(v *vm) {
	select {
	case p.idle <- v:
	default:
	}
}
