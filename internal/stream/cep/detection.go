package cep

import "time"

// Detection is one match of a rule: the Value of the engine's Result for
// the operator. The analytics service stores it and publishes it on
// analytics-events.
type Detection struct {
	Rule   string // the rule's name
	Type   string // the detection's event type, e.g. "FraudSuspected"
	Key    string // the match key, e.g. a customer id
	At     time.Time
	DryRun bool
	// Evidence are the eventIds of the events that make the match, in the
	// order they were matched (event time). A notFollowedBy detection's
	// evidence is the event nobody followed.
	Evidence []string
	// Holders counts the holders of the key for a whileHeld rule (the
	// evidence lists at most MaxHolderEvidence of their events).
	Holders int
}

// MaxHolderEvidence bounds a whileHeld detection's evidence.
const MaxHolderEvidence = 50
