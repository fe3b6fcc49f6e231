package decoders

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/dop251/goja"
	"github.com/dop251/goja/parser"
)

// Sentinel causes of a failed decode, wrapped in a *DecodeError; test them with errors.Is.
var (
	// ErrTimeout: the script used up its budget (CPU time of its thread on Linux, wall-clock
	// time elsewhere), or the caller's deadline passed, and was interrupted.
	ErrTimeout = errors.New("script timed out")
	// ErrStarved: the wall-clock ceiling ended the script before it used its CPU budget, and
	// again when retried: the machine was too busy to run it.
	ErrStarved = errors.New("script starved of CPU")
	// ErrStackOverflow: the script nested calls deeper than the configured limit.
	ErrStackOverflow = errors.New("script exceeded the call stack limit")
	// ErrThrown: the script threw an exception.
	ErrThrown = errors.New("script threw")
	// ErrReported: the decoder returned a non-empty errors array.
	ErrReported = errors.New("decoder reported errors")
	// ErrInvalidOutput: the script returned something that is not a decoder result.
	ErrInvalidOutput = errors.New("invalid decoder output")
	// ErrOutputTooLarge: the decoded output is larger than the configured limit.
	ErrOutputTooLarge = errors.New("decoder output too large")
	// ErrPayload: a built-in decoder could not parse the bytes.
	ErrPayload = errors.New("invalid payload")
	// ErrBusy: no runtime of the script became free before the caller's context ended.
	ErrBusy = errors.New("no free script runtime")
)

// CompileError reports a script that cannot be loaded: a syntax error, a top-level exception,
// a missing entry point or a file too large. Line and Column are 1-based, 0 when unknown.
type CompileError struct {
	File         string
	Line, Column int
	Err          error
}

func (e *CompileError) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("%s:%d:%d: %v", e.File, e.Line, e.Column, e.Err)
	}
	return fmt.Sprintf("%s: %v", e.File, e.Err)
}

func (e *CompileError) Unwrap() error { return e.Err }

// Reason names the cause of a decode failure in a few stable words, for metrics and logs.
func Reason(err error) string {
	switch {
	case err == nil:
		return ""
	case errors.Is(err, ErrTimeout):
		return "timeout"
	case errors.Is(err, ErrStarved):
		return "starved"
	case errors.Is(err, ErrStackOverflow):
		return "stack_overflow"
	case errors.Is(err, ErrThrown):
		return "exception"
	case errors.Is(err, ErrReported):
		return "reported"
	case errors.Is(err, ErrInvalidOutput):
		return "invalid_output"
	case errors.Is(err, ErrOutputTooLarge):
		return "output_too_large"
	case errors.Is(err, ErrPayload):
		return "payload"
	case errors.Is(err, ErrBusy):
		return "busy"
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return "cancelled"
	default:
		return "other"
	}
}

// scriptFailure turns an error from goja into a cause and the script position it names. A
// script's exception reaches it already turned into text (*thrownError, see vm.settle).
func scriptFailure(err error) (line, col int, cause error) {
	var (
		interrupted *goja.InterruptedError
		overflow    *goja.StackOverflowError
		thrown      *thrownError
		syntax      *goja.CompilerSyntaxError
		parseList   parser.ErrorList
		parseErr    *parser.Error
	)
	switch {
	case errors.As(err, &interrupted):
		line, col = position(interrupted.Stack())
		cause, ok := interrupted.Value().(error)
		if ok && errors.Is(cause, ErrStarved) {
			return line, col, cause
		}
		if ok && cause != ErrTimeout {
			return line, col, fmt.Errorf("script interrupted: %w", cause) // the caller's context
		}
		return line, col, ErrTimeout
	case errors.As(err, &overflow):
		line, col = position(overflow.Stack())
		return line, col, ErrStackOverflow
	case errors.As(err, &thrown):
		return thrown.line, thrown.col, fmt.Errorf("%w: %s", ErrThrown, thrown.msg)
	case errors.As(err, &syntax):
		if syntax.File != nil {
			p := syntax.File.Position(syntax.Offset)
			line, col = p.Line, p.Column
		}
		return line, col, fmt.Errorf("syntax error: %s", syntax.Message)
	case errors.As(err, &parseList) && len(parseList) > 0:
		e := parseList[0]
		msg := e.Message
		if len(parseList) > 1 {
			msg = fmt.Sprintf("%s (and %d more errors)", msg, len(parseList)-1)
		}
		return e.Position.Line, e.Position.Column, fmt.Errorf("syntax error: %s", msg)
	case errors.As(err, &parseErr):
		return parseErr.Position.Line, parseErr.Position.Column, fmt.Errorf("syntax error: %s", parseErr.Message)
	default:
		return 0, 0, err
	}
}

// position is the innermost frame of a stack in the user's script (not in the prelude).
func position(stack []goja.StackFrame) (line, col int) {
	for i := range stack {
		if stack[i].SrcName() == preludeFile {
			continue
		}
		if p := stack[i].Position(); p.Line > 0 {
			return p.Line, p.Column
		}
	}
	return 0, 0
}

// reportedError is a decoder that returned a non-empty errors array, with what else it
// returned alongside.
type reportedError struct {
	errs     []string
	warnings []string
	data     map[string]any // nil when the decoder returned no object
}

func (e *reportedError) Error() string {
	return ErrReported.Error() + ": " + strings.Join(e.errs, "; ")
}

func (e *reportedError) Is(target error) bool { return target == ErrReported }

// ReportedErrors returns the errors array a decoder returned, nil when err is not that.
func ReportedErrors(err error) []string {
	var re *reportedError
	if errors.As(err, &re) {
		return re.errs
	}
	return nil
}

// Reported returns everything a decoder returned with its non-empty errors array: errors,
// warnings and data (nil when it returned none). ok is false when err is not that.
func Reported(err error) (errs, warnings []string, data map[string]any, ok bool) {
	var re *reportedError
	if !errors.As(err, &re) {
		return nil, nil, nil, false
	}
	return re.errs, re.warnings, re.data, true
}
