// Package harness holds what rung's tests share: CheckFor, which polls instead of
// sleeping; RungBinary, the rung command built once per `go test` run, with FreeAddr and
// Output for running it as a process; Browser, a headless Chromium; and Race, true when
// the tests run under the race detector. Only tests import it (TestOnlyTestsImport
// checks that).
package harness
