// Package harness holds what rung's tests share: CheckFor, which polls instead of
// sleeping; Ledger and its Check, the by-event_id accounting every fault test ends with;
// RungBinary, the rung command built once per `go test` run, with FreeAddr and Output
// for running it as a process; Browser, a headless Chromium; and Race with
// SkipAllocsUnderRace for the allocation tests the race detector would falsify. Only
// tests import it (TestOnlyTestsImport checks that).
package harness
