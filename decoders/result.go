package decoders

import (
	"fmt"
	"strings"
	"time"

	"github.com/dop251/goja"
	"github.com/sluice-iot/sluice"
)

// decode runs the script's entry point on one uplink and turns its result into an Output.
// Everything that may run script code (the call, and reading the result, whose getters and
// proxies are JavaScript too) happens under one time budget and one recover.
func (v *vm) decode(in *Input) (*Output, error) {
	recv := in.RecvTime
	if recv.IsZero() {
		recv = time.Now().UTC()
	}
	v.device = in.Device
	var out *Output
	_, err := v.call(func() (goja.Value, error) {
		var err error
		out, err = v.run(in, recv)
		return nil, err
	})
	if err != nil {
		return nil, err
	}
	if out.Normalized != nil {
		out.Readings = normalizedReadings(out.Normalized, recv)
	} else {
		out.Readings = Flatten(out.Data, recv)
		applyUnits(out.Readings, v.p.units)
	}
	return out, nil
}

// run calls the entry point (and normalizeUplink) and exports the result. It must run inside
// v.call.
func (v *vm) run(in *Input, recv time.Time) (*Output, error) {
	var (
		res goja.Value
		err error
	)
	switch v.entry {
	case entryDecodeUplink:
		var input goja.Value
		if input, err = v.input(in, recv); err == nil {
			res, err = v.fn(goja.Undefined(), input)
		}
	case entryDecode:
		res, err = v.fn(goja.Undefined(), v.rt.ToValue(in.FPort), v.array(in.Bytes), v.variables(in.Variables))
	default:
		res, err = v.fn(goja.Undefined(), v.array(in.Bytes), v.rt.ToValue(in.FPort))
	}
	if err != nil {
		return nil, err
	}
	budget := int(v.p.cfg.MaxOutputSize)
	var dataVal goja.Value
	out := &Output{}
	if v.entry == entryDecodeUplink {
		obj, ok := res.(*goja.Object)
		if !ok || goja.IsNull(res) {
			return nil, fmt.Errorf("%w: decodeUplink returned %s, want an object {data, warnings, errors}", ErrInvalidOutput, typeOf(res))
		}
		out.Warnings = stringList(exported(obj.Get("warnings")))
		if errs := stringList(exported(obj.Get("errors"))); len(errs) > 0 {
			re := &reportedError{errs: errs, warnings: out.Warnings}
			if d := obj.Get("data"); !isNothing(d) {
				re.data, _ = exportObject(d, &budget, "decodeUplink data")
			}
			return nil, re
		}
		dataVal = obj.Get("data")
		if isNothing(dataVal) {
			dataVal = v.rt.NewObject()
		}
	} else {
		dataVal = res
	}
	if out.Data, err = exportObject(dataVal, &budget, v.entry.String()+" data"); err != nil {
		return nil, err
	}
	if v.normalize != nil {
		measurements, warnings, err := v.normalized(dataVal, &budget)
		if err != nil {
			return nil, err
		}
		out.Normalized = measurements
		out.Warnings = append(out.Warnings, warnings...)
	}
	return out, nil
}

// normalized runs normalizeUplink({data}), inside v.call. Errors it reports become warnings and no normalized
// payload, as in The Things Stack: the decoded data still stands.
func (v *vm) normalized(data goja.Value, budget *int) ([]map[string]any, []string, error) {
	in := v.rt.NewObject()
	_ = in.Set("data", data)
	res, err := v.normalize(goja.Undefined(), in)
	if err != nil {
		return nil, nil, err
	}
	obj, ok := res.(*goja.Object)
	if !ok || goja.IsNull(res) {
		return nil, nil, fmt.Errorf("%w: normalizeUplink returned %s, want an object {data, warnings, errors}", ErrInvalidOutput, typeOf(res))
	}
	warnings := stringList(exported(obj.Get("warnings")))
	if errs := stringList(exported(obj.Get("errors"))); len(errs) > 0 {
		return nil, append(warnings, "normalizeUplink: "+strings.Join(errs, "; ")), nil
	}
	raw, err := plain(exported(obj.Get("data")), budget, 0)
	if err != nil {
		return nil, nil, err
	}
	var ms []map[string]any
	switch x := raw.(type) {
	case nil:
		return nil, warnings, nil
	case map[string]any:
		ms = []map[string]any{x}
	case []any:
		for i, e := range x {
			m, ok := e.(map[string]any)
			if !ok {
				return nil, nil, fmt.Errorf("%w: normalizeUplink data[%d] is %T, want an object", ErrInvalidOutput, i, e)
			}
			ms = append(ms, m)
		}
	default:
		return nil, nil, fmt.Errorf("%w: normalizeUplink data is %T, want an object or an array of objects", ErrInvalidOutput, raw)
	}
	return ms, warnings, nil
}

// exportObject exports a decoded object within the output budget.
func exportObject(val goja.Value, budget *int, what string) (map[string]any, error) {
	if isNothing(val) {
		return nil, fmt.Errorf("%w: %s is %s, want an object", ErrInvalidOutput, what, typeOf(val))
	}
	raw, err := plain(val.Export(), budget, 0)
	if err != nil {
		return nil, err
	}
	m, ok := raw.(map[string]any)
	if !ok {
		if kind := typeOf(val); kind != "an object" {
			return nil, fmt.Errorf("%w: %s is %s, want an object", ErrInvalidOutput, what, kind)
		}
		return nil, fmt.Errorf("%w: %s is an object that does not export as a plain object (%T)", ErrInvalidOutput, what, raw)
	}
	return m, nil
}

// exported is v.Export(), nil for a missing property.
func exported(v goja.Value) any {
	if v == nil {
		return nil
	}
	return v.Export()
}

func isNothing(v goja.Value) bool { return v == nil || goja.IsUndefined(v) || goja.IsNull(v) }

// typeOf names a JS value's type for error messages.
func typeOf(v goja.Value) string {
	switch {
	case v == nil || goja.IsUndefined(v):
		return "undefined"
	case goja.IsNull(v):
		return "null"
	}
	if o, ok := v.(*goja.Object); ok {
		if o.ClassName() == "Array" {
			return "an array"
		}
		if _, ok := goja.AssertFunction(v); ok {
			return "a function"
		}
		return "an object"
	}
	switch v.Export().(type) {
	case string:
		return "a string"
	case bool:
		return "a boolean"
	case int64, float64:
		return "a number"
	default:
		return "a " + v.ExportType().String()
	}
}

func applyUnits(rs []sluice.Reading, units map[string]string) {
	if len(units) == 0 {
		return
	}
	for i := range rs {
		rs[i].Unit = units[rs[i].Metric]
	}
}
