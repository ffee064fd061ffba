package bridgev2

// HoldStatuses queues a blocker on the portal's statuses lane, so statuses
// pile up as they do when the homeserver is slow; release lets them go.
func (p *Portal) HoldStatuses() (release func()) {
	ch := make(chan struct{})
	p.statuses.push(func() { <-ch })
	return func() { close(ch) }
}
