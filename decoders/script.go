package decoders

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/dop251/goja"
	"github.com/dop251/goja/parser"
	"github.com/rs/zerolog"
)

// Script is a JavaScript decoder: The Things Stack v3 / ChirpStack v4 decodeUplink (with an
// optional normalizeUplink), ChirpStack v3 Decode or TTN v2 Decoder, detected from the script.
// It is safe for concurrent use: each call borrows a runtime from the script's pool. Reload
// swaps the compiled script atomically; calls in flight finish on the version they started with.
type Script struct {
	name string
	cur  atomic.Pointer[program]
}

// program is one compiled version of a script and its runtimes.
type program struct {
	name    string
	file    string
	prg     *goja.Program
	entry   entry
	units   map[string]string // metric → unit, from a template
	cfg     Config
	pool    *pool
	console zerolog.Logger // sampled
	metrics *Metrics       // may be nil
	readCPU cpuReader      // reads the CPU clock of a script's thread
}

// ScriptOptions are the optional parts of a script decoder.
type ScriptOptions struct {
	// Units gives the unit of readings by metric name (used when the script has no
	// normalizeUplink, whose readings take the units of the normalized payload schema).
	Units map[string]string
	// Log receives console output (sampled) and is given decoder and device fields.
	Log zerolog.Logger
	// Metrics, when set, counts the runtimes created and discarded, the calls that outlasted
	// their budget in wall-clock time but not in CPU time, and the retries of starved calls.
	Metrics *Metrics
}

// NewScript compiles src (read from file, used in error positions) as the decoder name,
// runs its top level once and detects its entry point. cfg supplies the sandbox limits
// (Timeout, MaxScriptSize, MaxOutputSize, MaxCallStack, PoolSize). Failures are *CompileError.
func NewScript(name, file string, src []byte, cfg Config, opts ScriptOptions) (*Script, error) {
	p, err := compile(name, file, src, cfg, opts)
	if err != nil {
		return nil, err
	}
	s := &Script{name: name}
	s.cur.Store(p)
	return s, nil
}

// Name implements Decoder.
func (s *Script) Name() string { return s.name }

// Entry names the entry point the script was detected to use: "decodeUplink", "Decode" or
// "Decoder".
func (s *Script) Entry() string { return s.cur.Load().entry.String() }

// File is the file the current version was read from.
func (s *Script) File() string { return s.cur.Load().file }

// Reload compiles src and, if it compiles, serves it from the next call on; otherwise the
// previous version keeps serving and the *CompileError is returned.
func (s *Script) Reload(file string, src []byte, cfg Config, opts ScriptOptions) error {
	p, err := compile(s.name, file, src, cfg, opts)
	if err != nil {
		return err
	}
	s.cur.Store(p)
	return nil
}

func compile(name, file string, src []byte, cfg Config, opts ScriptOptions) (*program, error) {
	if int64(len(src)) > int64(cfg.MaxScriptSize) {
		return nil, &CompileError{File: file, Err: fmt.Errorf("script is %d bytes, more than max_script_size %v", len(src), cfg.MaxScriptSize)}
	}
	// Parse apart from compiling: goja.Compile drops the position of syntax errors.
	ast, err := parser.ParseFile(nil, file, string(src), 0)
	if err != nil {
		line, col, cause := scriptFailure(err)
		return nil, &CompileError{File: file, Line: line, Column: col, Err: cause}
	}
	prg, err := goja.CompileAST(ast, false)
	if err != nil {
		line, col, cause := scriptFailure(err)
		return nil, &CompileError{File: file, Line: line, Column: col, Err: cause}
	}
	p := &program{
		name: name, file: file, prg: prg, units: opts.Units, cfg: cfg, metrics: opts.Metrics, readCPU: readThreadCPU,
		console: opts.Log.With().Str("component", "decoders").Str(fieldDecoder, name).Logger().
			Sample(&zerolog.BurstSampler{Burst: 10, Period: time.Second}),
	}
	first, err := newVM(p)
	if err != nil {
		line, col, cause := scriptFailure(err)
		return nil, &CompileError{File: file, Line: line, Column: col, Err: cause}
	}
	p.entry = first.entry
	opts.Metrics.runtime(name, "created")
	p.pool = newPool(cfg.PoolSize, func() (*vm, error) {
		v, err := newVM(p)
		if err == nil {
			opts.Metrics.runtime(name, "created")
		}
		return v, err
	})
	p.pool.discarded = func() { opts.Metrics.runtime(name, "discarded") }
	p.pool.add(first)
	return p, nil
}

// Decode implements Decoder. Failures are *DecodeError wrapping one of the Err… sentinels,
// with the script's line and column when goja reports them.
func (s *Script) Decode(ctx context.Context, in *Input) (*Output, error) {
	p := s.cur.Load()
	out, err := p.decode(ctx, in)
	if err != nil {
		de := &DecodeError{Decoder: s.name, Device: in.Device, Err: err}
		de.Line, de.Column, de.Err = scriptFailure(err)
		return nil, de
	}
	return out, nil
}

// decode runs one decode on a runtime from the pool. A call the wall-clock ceiling ended before
// it used its CPU budget (ErrStarved) says the machine was busy, not that the script is slow:
// it is retried once, on a fresh runtime with a fresh budget.
func (p *program) decode(ctx context.Context, in *Input) (*Output, error) {
	out, err := p.attempt(ctx, in)
	if err == nil { // before errors.As, whose target would cost an allocation per call
		return out, nil
	}
	var starved *starvedError
	if !errors.As(err, &starved) || ctx.Err() != nil {
		return out, err
	}
	out, err = p.attempt(ctx, in)
	switch {
	case err == nil:
		p.metrics.retry(p.name, "ok")
	case errors.As(err, &starved):
		starved.retried = true
		p.metrics.retry(p.name, "starved")
	default:
		p.metrics.retry(p.name, "failed")
	}
	return out, err
}

// attempt is one decode call on a runtime from the pool. The caller's context bounds it in
// wall-clock time: its deadline interrupts the script with ErrTimeout, its cancellation with
// its cause.
func (p *program) attempt(ctx context.Context, in *Input) (*Output, error) {
	v, err := p.pool.get(ctx)
	if err != nil {
		return nil, err
	}
	defer p.pool.put(v)
	if d, ok := ctx.Deadline(); ok && !time.Now().Before(d) {
		return nil, ErrTimeout
	}
	if ctx.Done() != nil { // a cancelled caller interrupts the script too
		stop := context.AfterFunc(ctx, func() {
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				v.rt.Interrupt(ErrTimeout) // a deadline is a time budget, like the timeout
				return
			}
			v.rt.Interrupt(context.Cause(ctx))
		})
		defer func() {
			if !stop() {
				v.broken = true // the interrupt may land after the call: never reuse
			}
		}()
	}
	return v.decode(in)
}
