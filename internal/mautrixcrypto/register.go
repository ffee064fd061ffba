// Copyright (c) 2024 Tulir Asokan
//
// This Source Code Form is subject to the terms of the Mozilla Public
// License, v. 2.0. If a copy of the MPL was not distributed with this
// file, You can obtain one at http://mozilla.org/MPL/2.0/.

package crypto

import (
	"maunium.net/go/mautrix/crypto/goolm"
)

// The pure-Go Olm backend is registered unconditionally, so the bridge builds
// without cgo and without libolm.
func init() {
	goolm.Register()
}
