package main

// TrustLedger is the --trust-ledger flag of sync and plan.
type TrustLedger struct {
	Trust bool `name:"trust-ledger" help:"Skip a destination the ledger saw at the source's digest without asking the destination registry (a no-op run sends it nothing); a tag deleted or overwritten there behind imagesync's back is then not noticed. For destinations only imagesync writes to."`
}

// check refuses --trust-ledger without a ledger. Call it before opening
// the session.
func (t TrustLedger) check(in *Inputs) error {
	if t.Trust && in.NoLedger {
		return usageError("--trust-ledger trusts the ledger: it cannot go with --no-ledger")
	}
	return nil
}

// effective is --trust-ledger, else a config file's defaults.trust-ledger;
// never without a ledger.
func (t TrustLedger) effective(rc *runContext, in *Inputs, s *session) bool {
	if in.NoLedger {
		return false
	}
	if s.config != nil {
		return s.config.TrustLedger(t.Trust)
	}
	return t.Trust
}
