package decoders

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/fsnotify/fsnotify"
)

// settle is how long Run waits after a file event before reloading, so that an editor's
// write-rename-chmod sequence is one reload. Later events do not push the reload further out,
// so a file rewritten continuously is still reloaded.
const settle = 150 * time.Millisecond

// Run watches scripts_dir and templates_dir (when watch is on) and reloads on every change,
// until ctx is done or Close is called. A script that fails to compile is logged with its file
// and line:column and the previous version keeps serving. Run returns nil when stopped, or an
// error when the watch cannot start. Without watch it just waits.
func (s *Set) Run(ctx context.Context) error {
	if !s.started() {
		return nil
	}
	defer s.running.Done()
	if !s.cfg.Watch {
		select {
		case <-ctx.Done():
		case <-s.done:
		}
		return nil
	}
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("watch decoders: %w", err)
	}
	defer w.Close()
	for _, root := range []string{s.cfg.ScriptsDir, s.cfg.TemplatesDir} {
		if root == "" {
			continue
		}
		if err := watchTree(w, root, root == s.cfg.TemplatesDir); err != nil {
			return fmt.Errorf("watch decoders: %w", err)
		}
	}
	// Changes made between Open and now are picked up once the watches are in place.
	s.reloadAndLog()
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	pending := false
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-s.done:
			return nil
		case ev, ok := <-w.Events:
			if !ok {
				return nil
			}
			if ev.Has(fsnotify.Create) && s.cfg.TemplatesDir != "" {
				if fi, err := os.Stat(ev.Name); err == nil && fi.IsDir() {
					_ = watchTree(w, ev.Name, true) // a new vendor or model directory
				}
			}
			if !pending {
				pending = true
				timer.Reset(settle)
			}
		case err, ok := <-w.Errors:
			if !ok {
				return nil
			}
			s.log.Warn().Err(err).Msg("decoder file watch error")
		case <-timer.C:
			pending = false
			s.reloadAndLog()
		}
	}
}

// reloadAndLog reloads and logs what changed; failures are logged once each.
func (s *Set) reloadAndLog() {
	change, err := s.Reload()
	for _, n := range change.Loaded {
		s.log.Info().Str(fieldDecoder, n).Msg("decoder loaded")
	}
	for _, n := range change.Reloaded {
		s.log.Info().Str(fieldDecoder, n).Msg("decoder reloaded")
	}
	for _, n := range change.Removed {
		s.log.Warn().Str(fieldDecoder, n).Msg("decoder removed: its file is gone")
	}
	if err == nil {
		return
	}
	var joined interface{ Unwrap() []error }
	errs := []error{err}
	if errors.As(err, &joined) {
		errs = joined.Unwrap()
	}
	for _, e := range errs {
		ev := s.log.Error().Err(e)
		var ce *CompileError
		if errors.As(e, &ce) {
			ev = ev.Str(fieldFile, ce.File).Int("line", ce.Line).Int("column", ce.Column)
		}
		ev.Msg("decoder not reloaded; the previous version keeps serving")
	}
}

// watchTree watches dir and, when recursive, every directory below it (fsnotify watches one
// directory at a time).
func watchTree(w *fsnotify.Watcher, dir string, recursive bool) error {
	if !recursive {
		return w.Add(dir)
	}
	return filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			return w.Add(path)
		}
		return nil
	})
}
