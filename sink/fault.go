package sink

import (
	"errors"

	"github.com/jackc/pgx/v5/pgconn"
)

// fault is what kind of failure a write met, and so what the sink does about it. (A retention
// class, class.go, is another thing.)
type fault int

const (
	// faultTransient: the database, the network or a resource failed, not the rows. The batch
	// is retried, whole, with capped backoff, until it commits; nothing is dropped.
	faultTransient fault = iota
	// faultData: the database refused some rows of the batch (SQLSTATE classes 22 data
	// exception, 23 integrity constraint violation, 54 program limit exceeded). The batch is
	// split until the refused rows are found; they become dead letters and the rest commits.
	faultData
)

func (f fault) String() string {
	if f == faultData {
		return "data"
	}
	return "transient"
}

// faultOf decides what to do about err, returned by writer.write. Only a PostgreSQL error
// whose SQLSTATE names the rows is a data fault; everything else (connection classes 08, 53
// insufficient resources, 57 operator intervention, 40 transaction rollback, a timeout, an
// error without SQLSTATE) is transient: retrying a whole batch is always safe, dropping rows
// on a guess never is. The expected conflict (23505 unique_violation) does not reach here: a
// direct copy meeting stored rows is merged again with ON CONFLICT DO NOTHING
// (writer.writeWith); if it does, it is retried.
func faultOf(err error) (fault, string) {
	var kc *kindConflict
	if errors.As(err, &kc) {
		return faultData, ""
	}
	var pe *pgconn.PgError
	if !errors.As(err, &pe) {
		return faultTransient, ""
	}
	if len(pe.Code) != 5 {
		return faultTransient, pe.Code
	}
	switch pe.Code[:2] {
	case "22", "54":
		return faultData, pe.Code
	case "23":
		if pe.Code == "23505" {
			return faultTransient, pe.Code
		}
		return faultData, pe.Code
	}
	return faultTransient, pe.Code
}
