package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"golang.org/x/crypto/bcrypt"
)

// runPasswd prints the bcrypt hash of a password for mqtt.auth users (password_hash). The
// password is read from standard input, never from the command line (where other users and
// the shell history would see it): typed twice without echo on a terminal, else the first
// line of a pipe.
func runPasswd(args []string, stdin *os.File, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("sluice passwd", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cost := fs.Int("cost", bcrypt.DefaultCost, "bcrypt `cost` (each step doubles the work of every login check)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: sluice passwd [-cost N] < password\n\nPrints the bcrypt hash of a password for mqtt.auth.users[].password_hash.")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return parseFailure(err)
	}
	if fs.NArg() > 0 {
		fmt.Fprintln(stderr, "sluice passwd: the password is read from standard input, not from arguments")
		return exitUsage
	}
	if *cost < bcrypt.MinCost || *cost > bcrypt.MaxCost {
		fmt.Fprintf(stderr, "sluice passwd: -cost %d is outside %d..%d\n", *cost, bcrypt.MinCost, bcrypt.MaxCost)
		return exitUsage
	}
	pw, err := readPassword(stdin, stderr)
	if err != nil {
		fmt.Fprintln(stderr, "sluice passwd:", err)
		return exitFailure
	}
	hash, err := bcrypt.GenerateFromPassword(pw, *cost)
	if err != nil {
		fmt.Fprintln(stderr, "sluice passwd:", err)
		return exitFailure
	}
	fmt.Fprintln(stdout, string(hash))
	return exitOK
}

func readPassword(stdin *os.File, stderr io.Writer) ([]byte, error) {
	if restore, ok := noEcho(stdin); ok {
		defer restore()
		r := bufio.NewReader(stdin)
		fmt.Fprint(stderr, "Password: ")
		a, err := readLine(r)
		fmt.Fprintln(stderr)
		if err != nil {
			return nil, err
		}
		fmt.Fprint(stderr, "Again: ")
		b, err := readLine(r)
		fmt.Fprintln(stderr)
		if err != nil {
			return nil, err
		}
		if a != b {
			return nil, errors.New("the passwords differ")
		}
		return checkPassword(a)
	}
	line, err := readLine(bufio.NewReader(stdin))
	if err != nil {
		return nil, err
	}
	return checkPassword(line)
}

func readLine(r *bufio.Reader) (string, error) {
	line, err := r.ReadString('\n')
	if err != nil && !(errors.Is(err, io.EOF) && line != "") {
		if errors.Is(err, io.EOF) {
			return "", errors.New("no password on standard input")
		}
		return "", err
	}
	return strings.TrimRight(line, "\r\n"), nil
}

func checkPassword(pw string) ([]byte, error) {
	switch {
	case pw == "":
		return nil, errors.New("empty password")
	case len(pw) > 72:
		return nil, errors.New("bcrypt uses at most 72 bytes of a password; use a shorter one")
	}
	return []byte(pw), nil
}
