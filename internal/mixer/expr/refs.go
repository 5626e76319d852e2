package expr

// Ref is one attribute read during an evaluation: an attribute, or one key
// of a map attribute, and whether it was present.
type Ref struct {
	Name    string
	Key     string // map key; meaningful when IsKey
	IsKey   bool
	Present bool
}

// Refs collects the attributes evaluations read (Istio's referenced
// attributes): a Check answer is valid for every request that agrees on
// exactly these. The zero value is ready; a nil *Refs records nothing.
type Refs struct {
	list []Ref
}

func (r *Refs) add(name string, present bool) {
	if r == nil {
		return
	}
	for _, x := range r.list {
		if !x.IsKey && x.Name == name {
			return
		}
	}
	r.list = append(r.list, Ref{Name: name, Present: present})
}

func (r *Refs) addKey(name, key string, present bool) {
	if r == nil {
		return
	}
	for _, x := range r.list {
		if x.IsKey && x.Name == name && x.Key == key {
			return
		}
	}
	r.list = append(r.list, Ref{Name: name, Key: key, IsKey: true, Present: present})
}

// Add records a whole attribute (adapters that read the bag directly).
func (r *Refs) Add(name string, present bool) { r.add(name, present) }

// List returns what was recorded, in order.
func (r *Refs) List() []Ref {
	if r == nil {
		return nil
	}
	return r.list
}

// Reset empties r for reuse.
func (r *Refs) Reset() { r.list = r.list[:0] }
