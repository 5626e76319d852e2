package xdsparse

// VirtualHostMemo remembers one VirtualHostFor answer: the table it came
// from, the authority asked for and the virtual host chosen. A keep-alive
// connection's requests almost always carry the same authority, so the
// next request's selection is a pointer and a string comparison instead of
// a map lookup (a map's code and buckets are cold at every request). A
// RouteTable does not change once built (an update or a VHDS answer makes
// a new one), so the table's identity is its version. The zero memo
// remembers nothing. A memo holds its table until it is overwritten.
type VirtualHostMemo struct {
	table     *RouteTable
	authority string
	vh        *VirtualHost
}

// VirtualHostForMemo is VirtualHostFor(authority), taken from m when m
// remembers t's answer for authority, and remembered in m otherwise.
func (t *RouteTable) VirtualHostForMemo(authority string, m *VirtualHostMemo) *VirtualHost {
	if m.table == t && m.authority == authority {
		return m.vh
	}
	vh := t.VirtualHostFor(authority)
	*m = VirtualHostMemo{table: t, authority: authority, vh: vh}
	return vh
}

// MatchMemo is Match with the virtual host selected through m.
func (t *RouteTable) MatchMemo(in *Input, m *VirtualHostMemo) *Route {
	vh := t.VirtualHostForMemo(in.Authority, m)
	if vh == nil {
		return nil
	}
	return vh.Match(in)
}
