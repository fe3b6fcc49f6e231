package main

import (
	"bytes"
	"os"
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"
)

func TestPasswd(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	w.WriteString("correct horse\n")
	w.Close()
	var stdout, stderr bytes.Buffer
	if code := runPasswd([]string{"-cost", "4"}, r, &stdout, &stderr); code != exitOK {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	hash := strings.TrimSpace(stdout.String())
	if err := bcrypt.CompareHashAndPassword([]byte(hash), []byte("correct horse")); err != nil {
		t.Errorf("printed %q, which does not verify the password: %v", hash, err)
	}
	if code := runPasswd([]string{"correct horse"}, r, &stdout, &stderr); code != exitUsage ||
		!strings.Contains(stderr.String(), "the password is read from standard input, not from arguments") {
		t.Errorf("password as an argument: exit %d, %q", code, stderr.String())
	}
}
