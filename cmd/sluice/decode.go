package main

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/rs/zerolog"
	"github.com/sluice-iot/sluice"
	"github.com/sluice-iot/sluice/decoders"
)

const decodeUsage = `usage: sluice decode (--script FILE | --template NAME | --decoder NAME) --fport N
                     (--hex HEX | --base64 B64) [--var k=v]... [--recv-time RFC3339]
                     [--readings | --normalized]
       sluice decode --test PATH

Decodes one payload and prints {"data":…,"warnings":[…],"errors":[…]} (with --readings, the
readings that would be stored; with --normalized, normalizeUplink's output), or runs the example vectors of every template (template.yaml)
and The Things Stack codec file (*-codec.yaml) at or under PATH. Exit status: 0 success, 1 the
decoder failed or reported errors (or an example failed), 2 usage error.
`

// varFlags collects repeated --var k=v.
type varFlags map[string]string

func (v varFlags) String() string { return "" }

func (v varFlags) Set(s string) error {
	k, val, ok := strings.Cut(s, "=")
	if !ok || k == "" {
		return fmt.Errorf("%q is not k=v", s)
	}
	v[k] = val
	return nil
}

// decodeResult is the printed result, in the shape of The Things Stack's decoder output.
type decodeResult struct {
	Data     map[string]any `json:"data"`
	Warnings []string       `json:"warnings"`
	Errors   []string       `json:"errors"`
}

func runDecode(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("sluice decode", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, decodeUsage); fs.PrintDefaults() }
	var (
		script    = fs.String("script", "", "decode with the JavaScript decoder in `FILE`")
		template  = fs.String("template", "", "decode with the device template `NAME` (vendor/model) or the template directory NAME")
		builtin   = fs.String("decoder", "", "decode with the decoder `NAME` (json, cayenne-lpp, raw, or a template name)")
		templates = fs.String("templates", "configs/templates", "templates `DIR`")
		fport     = fs.Int("fport", -1, "LoRaWAN frame port `N` (0-255)")
		hexBytes  = fs.String("hex", "", "payload as `HEX`")
		b64Bytes  = fs.String("base64", "", "payload as base64 `B64`")
		recvTime  = fs.String("recv-time", "", "receive time, `RFC3339` (default now)")
		readings  = fs.Bool("readings", false, "print the readings that would be stored instead of the decoder output")
		normal    = fs.Bool("normalized", false, "print the normalized payload (normalizeUplink) instead of the decoder output")
		timeout   = fs.Duration("timeout", decoders.DefaultConfig().Timeout, "script time budget per call")
		test      = fs.String("test", "", "run the example vectors of the template(s) under `PATH`")
		vars      = varFlags{}
	)
	fs.Var(vars, "var", "device variable `k=v` passed to the decoder (repeatable)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	usageErr := func(format string, a ...any) int {
		fmt.Fprintf(stderr, "sluice decode: "+format+"\n", a...)
		return exitUsage
	}
	if fs.NArg() > 0 {
		return usageErr("unexpected argument %q", fs.Arg(0))
	}
	cfg := decoders.DefaultConfig()
	cfg.Timeout = *timeout
	if err := cfg.Validate(); err != nil {
		return usageErr("%v", err)
	}
	log := zerolog.New(zerolog.ConsoleWriter{Out: stderr, NoColor: true, PartsExclude: []string{zerolog.TimestampFieldName}})
	if *test != "" {
		if *script != "" || *template != "" || *builtin != "" || *hexBytes != "" || *b64Bytes != "" {
			return usageErr("--test takes no decoder or payload flags")
		}
		return runExamples(*test, cfg, log, stdout, stderr)
	}

	chosen := 0
	for _, s := range []string{*script, *template, *builtin} {
		if s != "" {
			chosen++
		}
	}
	if chosen != 1 {
		return usageErr("give exactly one of --script, --template, --decoder")
	}
	if *readings && *normal {
		return usageErr("give --readings or --normalized, not both")
	}
	if *fport < 0 || *fport > 255 {
		return usageErr("--fport must be given, 0 to 255")
	}
	var payload []byte
	var err error
	switch {
	case *hexBytes != "" && *b64Bytes != "":
		return usageErr("give --hex or --base64, not both")
	case *hexBytes != "":
		clean := strings.NewReplacer(" ", "", ":", "", "0x", "").Replace(*hexBytes)
		if payload, err = hex.DecodeString(clean); err != nil {
			return usageErr("--hex: %v", err)
		}
	case *b64Bytes != "":
		if payload, err = base64.StdEncoding.DecodeString(*b64Bytes); err != nil {
			return usageErr("--base64: %v", err)
		}
	default:
		return usageErr("give the payload with --hex or --base64")
	}
	recv := time.Now().UTC()
	if *recvTime != "" {
		if recv, err = time.Parse(time.RFC3339Nano, *recvTime); err != nil {
			return usageErr("--recv-time: %q is not an RFC 3339 time", *recvTime)
		}
	}

	var dec decoders.Decoder
	switch {
	case *script != "":
		src, err := os.ReadFile(*script)
		if err != nil {
			return usageErr("%v", err)
		}
		name := strings.TrimSuffix(filepath.Base(*script), ".js")
		if dec, err = decoders.NewScript(name, *script, src, cfg, decoders.ScriptOptions{Log: log}); err != nil {
			fmt.Fprintln(stderr, "sluice decode:", err)
			return exitFailure
		}
	case *template != "":
		dir := *template
		if _, err := os.Stat(filepath.Join(dir, decoders.TemplateFile)); err != nil {
			dir = filepath.Join(*templates, filepath.FromSlash(*template))
		}
		tpl, err := decoders.LoadTemplate(dir, decoders.TemplateID(dir, dir))
		if err != nil {
			return usageErr("%v", err)
		}
		if dec, err = tpl.Compile(cfg, decoders.ScriptOptions{Log: log}); err != nil {
			fmt.Fprintln(stderr, "sluice decode:", err)
			return exitFailure
		}
	default:
		set := decoders.NewSet()
		if _, ok := set.Lookup(*builtin); !ok {
			if _, err := os.Stat(*templates); err == nil {
				cfg.TemplatesDir = *templates
				if set, err = decoders.Open(cfg, log, nil); err != nil {
					fmt.Fprintln(stderr, "sluice decode:", err)
					return exitFailure
				}
			}
		}
		var ok bool
		if dec, ok = set.Lookup(*builtin); !ok {
			return usageErr("%v", set.Check(*builtin))
		}
	}

	in := &decoders.Input{Bytes: payload, FPort: *fport, RecvTime: recv, Variables: vars, Device: "cli"}
	out, err := dec.Decode(context.Background(), in)
	enc := json.NewEncoder(stdout)
	enc.SetEscapeHTML(false)
	if err != nil {
		res := decodeResult{Warnings: []string{}, Errors: []string{failureText(err)}}
		if errs, warnings, data, ok := decoders.Reported(err); ok {
			res.Errors, res.Data = errs, data
			if warnings != nil {
				res.Warnings = warnings
			}
		}
		_ = enc.Encode(res)
		fmt.Fprintln(stderr, "sluice decode:", err)
		return exitFailure
	}
	if *readings {
		rs := out.Readings
		if rs == nil {
			rs = []sluice.Reading{}
		}
		if err := enc.Encode(rs); err != nil {
			fmt.Fprintln(stderr, "sluice decode:", err)
			return exitFailure
		}
		return exitOK
	}
	warnings := out.Warnings
	if warnings == nil {
		warnings = []string{}
	}
	var res any = decodeResult{Data: out.Data, Warnings: warnings, Errors: []string{}}
	if *normal {
		// As The Things Stack shows a normalized payload: a list of measurements.
		ms := out.Normalized
		if ms == nil {
			ms = []map[string]any{}
		}
		res = struct {
			Data     []map[string]any `json:"data"`
			Warnings []string         `json:"warnings"`
			Errors   []string         `json:"errors"`
		}{ms, warnings, []string{}}
	}
	if err := enc.Encode(res); err != nil {
		fmt.Fprintln(stderr, "sluice decode:", err)
		return exitFailure
	}
	return exitOK
}

// failureText is a decode failure without the decoder and device prefix, with its position.
func failureText(err error) string {
	var de *decoders.DecodeError
	if errors.As(err, &de) {
		if de.Line > 0 {
			return fmt.Sprintf("%v (at %d:%d)", de.Err, de.Line, de.Column)
		}
		return de.Err.Error()
	}
	return err.Error()
}

// runExamples runs the example vectors of every template under path (and of every codec file
// of The Things Stack device repository, *-codec.yaml) and prints one line per example, then
// "N passed, M failed".
func runExamples(path string, cfg decoders.Config, log zerolog.Logger, stdout, stderr io.Writer) int {
	var sources []string // template directories and codec files
	err := filepath.WalkDir(path, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		switch {
		case d.IsDir():
		case d.Name() == decoders.TemplateFile:
			sources = append(sources, filepath.Dir(p))
		case decoders.IsCodec(d.Name()):
			sources = append(sources, p)
		}
		return nil
	})
	if err != nil {
		fmt.Fprintln(stderr, "sluice decode:", err)
		return exitUsage
	}
	if len(sources) == 0 {
		fmt.Fprintf(stderr, "sluice decode: no %s or *-codec.yaml under %s\n", decoders.TemplateFile, path)
		return exitUsage
	}
	passed, failed := 0, 0
	for _, src := range sources {
		var tpl *decoders.Template
		var err error
		if decoders.IsCodec(src) {
			tpl, err = decoders.LoadCodec(src)
		} else {
			tpl, err = decoders.LoadTemplate(src, decoders.TemplateID(src, src))
		}
		id := src
		if tpl != nil {
			id = tpl.ID
		}
		var s *decoders.Script
		if err == nil {
			s, err = tpl.Compile(cfg, decoders.ScriptOptions{Log: log})
		}
		if err != nil {
			failed++
			fmt.Fprintf(stdout, "FAIL %s: %v\n", id, err)
			continue
		}
		for _, ex := range tpl.Examples {
			if err := ex.Run(context.Background(), s); err != nil {
				failed++
				fmt.Fprintf(stdout, "FAIL %s: %s: %v\n", id, ex.Description, err)
				continue
			}
			passed++
			fmt.Fprintf(stdout, "ok   %s: %s\n", id, ex.Description)
		}
	}
	fmt.Fprintf(stdout, "%d passed, %d failed\n", passed, failed)
	if failed > 0 {
		return exitFailure
	}
	return exitOK
}
