// Package metrictest reads the value of a metric from a Prometheus registry, for tests that
// assert on what a user sees on /metrics.
package metrictest

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// Value returns the value of the first child of counter or gauge name that carries the label
// label=value (the first child of all when label is ""), 0 when there is none. It fails the
// test when g cannot be gathered.
func Value(t testing.TB, g prometheus.Gatherer, name, label, value string) float64 {
	t.Helper()
	if label == "" {
		return Labelled(t, g, name, nil)
	}
	return Labelled(t, g, name, prometheus.Labels{label: value})
}

// Labelled returns the value of the first child of counter or gauge name that carries every
// label of labels, 0 when there is none. It fails the test when g cannot be gathered.
func Labelled(t testing.TB, g prometheus.Gatherer, name string, labels prometheus.Labels) float64 {
	t.Helper()
	if ms := children(t, g, name, labels); len(ms) > 0 {
		return valueOf(ms[0])
	}
	return 0
}

// Sum returns the sum of the children of counter or gauge name that carry the label
// label=value (of all children when label is ""). It fails the test when g cannot be gathered.
func Sum(t testing.TB, g prometheus.Gatherer, name, label, value string) float64 {
	t.Helper()
	var labels prometheus.Labels
	if label != "" {
		labels = prometheus.Labels{label: value}
	}
	sum := 0.0
	for _, m := range children(t, g, name, labels) {
		sum += valueOf(m)
	}
	return sum
}

// Counter returns the value of one counter or gauge, such as a child of a vector.
func Counter(t testing.TB, c prometheus.Metric) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	return valueOf(&m)
}

// children returns the children of metric name that carry every label of labels.
func children(t testing.TB, g prometheus.Gatherer, name string, labels prometheus.Labels) []*dto.Metric {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var out []*dto.Metric
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			found := 0
			for _, l := range m.GetLabel() {
				if v, ok := labels[l.GetName()]; ok && v == l.GetValue() {
					found++
				}
			}
			if found == len(labels) {
				out = append(out, m)
			}
		}
	}
	return out
}

func valueOf(m *dto.Metric) float64 {
	if c := m.GetCounter(); c != nil {
		return c.GetValue()
	}
	return m.GetGauge().GetValue()
}
