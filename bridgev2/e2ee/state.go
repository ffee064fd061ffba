package e2ee

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"
)

// roomState is what the Olm machine needs to know about rooms: which are
// encrypted (with what settings) and who is in them. It is a cache in front
// of the homeserver, kept current by the room events the bridge sees in
// transactions; a room not cached yet is asked about once.
type roomState struct {
	cli func() *mautrix.Client
	// rotation, when set, replaces the rooms' own rotation settings
	// (encryption.rotation.enable_custom).
	rotation *event.EncryptionEventContent

	mu         sync.Mutex
	encryption map[id.RoomID]*event.EncryptionEventContent // nil value: known unencrypted
	visibility map[id.RoomID]*event.HistoryVisibilityEventContent
	members    map[id.RoomID]map[id.UserID]event.Membership
}

func newRoomState(cli func() *mautrix.Client, rotation *event.EncryptionEventContent) *roomState {
	return &roomState{
		cli: cli, rotation: rotation,
		encryption: make(map[id.RoomID]*event.EncryptionEventContent),
		visibility: make(map[id.RoomID]*event.HistoryVisibilityEventContent),
		members:    make(map[id.RoomID]map[id.UserID]event.Membership),
	}
}

// encryptionOf returns the room's m.room.encryption content, or nil.
func (s *roomState) encryptionOf(ctx context.Context, roomID id.RoomID) (*event.EncryptionEventContent, error) {
	s.mu.Lock()
	content, known := s.encryption[roomID]
	s.mu.Unlock()
	if known {
		return content, nil
	}
	cli := s.cli()
	if cli == nil {
		return nil, errors.New("the bridge's encryption device is not set up yet")
	}
	var fetched event.EncryptionEventContent
	err := cli.StateEvent(ctx, roomID, event.StateEncryption, "", &fetched)
	if errors.Is(err, mautrix.MNotFound) {
		s.setEncryption(roomID, nil)
		return nil, nil
	}
	var httpErr mautrix.HTTPError
	if errors.As(err, &httpErr) && httpErr.IsStatus(http.StatusNotFound) {
		s.setEncryption(roomID, nil)
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read the encryption state of %s: %w", roomID, err)
	}
	if fetched.Algorithm == "" {
		s.setEncryption(roomID, nil)
		return nil, nil
	}
	s.setEncryption(roomID, &fetched)
	return &fetched, nil
}

func (s *roomState) setEncryption(roomID id.RoomID, content *event.EncryptionEventContent) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if old := s.encryption[roomID]; old != nil && content == nil {
		// Encryption cannot be turned off again in Matrix.
		return
	}
	s.encryption[roomID] = content
}

// known reports whether the room's encryption state is cached: a room the
// bot has not joined yet (a portal being created) cannot be asked about.
func (s *roomState) known(roomID id.RoomID) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.encryption[roomID]
	return ok
}

// IsEncrypted implements crypto.StateStore.
func (s *roomState) IsEncrypted(ctx context.Context, roomID id.RoomID) (bool, error) {
	content, err := s.encryptionOf(ctx, roomID)
	return content != nil, err
}

// GetEncryptionEvent implements crypto.StateStore.
func (s *roomState) GetEncryptionEvent(ctx context.Context, roomID id.RoomID) (*event.EncryptionEventContent, error) {
	content, err := s.encryptionOf(ctx, roomID)
	if content != nil && s.rotation != nil {
		custom := *content
		custom.RotationPeriodMillis = s.rotation.RotationPeriodMillis
		custom.RotationPeriodMessages = s.rotation.RotationPeriodMessages
		return &custom, err
	}
	return content, err
}

// GetHistoryVisibility implements crypto.StateStore.
func (s *roomState) GetHistoryVisibility(_ context.Context, roomID id.RoomID) (*event.HistoryVisibilityEventContent, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.visibility[roomID], nil
}

// FindSharedRooms implements crypto.StateStore: the encrypted rooms a user
// is in, whose outbound sessions are replaced when the user's devices
// change, so a new device gets the keys of the messages that follow.
func (s *roomState) FindSharedRooms(_ context.Context, userID id.UserID) ([]id.RoomID, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []id.RoomID
	for roomID, members := range s.members {
		if s.encryption[roomID] == nil {
			continue
		}
		if m := members[userID]; m == event.MembershipJoin || m == event.MembershipInvite {
			out = append(out, roomID)
		}
	}
	return out, nil
}

// setMembers replaces the member list of a room.
func (s *roomState) setMembers(roomID id.RoomID, members map[id.UserID]event.Membership) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.members[roomID] = members
}

// handle updates the cache from a room event.
func (s *roomState) handle(evt *event.Event) {
	switch evt.Type {
	case event.StateEncryption:
		if content, ok := evt.Content.Parsed.(*event.EncryptionEventContent); ok && content.Algorithm != "" {
			s.setEncryption(evt.RoomID, content)
		}
	case event.StateHistoryVisibility:
		if content, ok := evt.Content.Parsed.(*event.HistoryVisibilityEventContent); ok {
			s.mu.Lock()
			s.visibility[evt.RoomID] = content
			s.mu.Unlock()
		}
	case event.StateMember:
		content, ok := evt.Content.Parsed.(*event.MemberEventContent)
		if !ok || evt.StateKey == nil {
			return
		}
		s.mu.Lock()
		members := s.members[evt.RoomID]
		if members == nil {
			members = make(map[id.UserID]event.Membership)
			s.members[evt.RoomID] = members
		}
		members[id.UserID(*evt.StateKey)] = content.Membership
		s.mu.Unlock()
	}
}
