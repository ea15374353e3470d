package samlprovider

import (
	"slices"

	"github.com/campusidp/campusidp/config"
)

// Release is the attributes decided for one SP, by their names in
// saml.attributes, in that list's order. Required ones the SP marked
// isRequired (or an administrator listed for it); optional ones a user
// may decline where consent is asked.
type Release struct {
	Required []string
	Optional []string
}

// All is every attribute of the release, required first.
func (r Release) All() []string { return append(slices.Clip(r.Required), r.Optional...) }

// ReleaseFor decides what the SP may receive: its service_providers
// attributes list when it has one; otherwise what its metadata requests
// (RequestedAttribute, plus the identifier of its SubjectIdRequirement)
// within the release rules of its entity categories and registration
// authority, or the default rule when none matches. A bundle rule adds its
// attributes even when not requested.
func (p *Provider) ReleaseFor(sp *ServiceProvider) Release {
	return decideRelease(sp, p.cfg.Attributes, p.cfg.Release)
}

// ReleaseForEntity is ReleaseFor by entity ID; false when the SP is not
// trusted now.
func (p *Provider) ReleaseForEntity(entityID string) (Release, bool) {
	sp, ok := p.registry.Lookup(entityID)
	if !ok {
		return Release{}, false
	}
	return p.ReleaseFor(sp), true
}

func decideRelease(sp *ServiceProvider, defs []config.SAMLAttribute, policy config.SAMLRelease) Release {
	defined := make(map[string]config.SAMLAttribute, len(defs))
	for _, d := range defs {
		defined[d.Name] = d
	}
	var out Release
	if len(sp.Config.Attributes) > 0 {
		for _, d := range defs {
			if slices.Contains(sp.Config.Attributes, d.Name) {
				out.Required = append(out.Required, d.Name)
			}
		}
		return out
	}

	// requested maps SAML attribute names to isRequired.
	requested := requestedAttributes(sp)
	switch sp.Info.SubjectIDRequirement {
	case "subject-id":
		requested[config.SubjectIDName] = true
	case "pairwise-id", "any":
		// Either satisfies "any"; the pairwise one cannot be correlated
		// across SPs.
		requested[config.PairwiseIDName] = true
	}

	var rules []config.SAMLReleaseRule
	for _, r := range policy.EntityCategories {
		if slices.Contains(sp.Info.Categories, r.Match) {
			rules = append(rules, r)
		}
	}
	for _, r := range policy.RegistrationAuthorities {
		if sp.Info.RegistrationAuthority != "" && r.Match == sp.Info.RegistrationAuthority {
			rules = append(rules, r)
		}
	}
	if len(rules) == 0 {
		rules = []config.SAMLReleaseRule{policy.Default}
	}
	allowed := map[string]bool{}
	for _, r := range rules {
		for _, name := range r.Attributes {
			d, ok := defined[name]
			if !ok {
				continue
			}
			if _, asked := requested[d.OID]; asked || r.Mode == config.ReleaseBundle {
				allowed[name] = true
			}
		}
	}
	for _, d := range defs {
		if !allowed[d.Name] {
			continue
		}
		if requested[d.OID] {
			out.Required = append(out.Required, d.Name)
		} else {
			out.Optional = append(out.Optional, d.Name)
		}
	}
	return out
}

// requestedAttributes reads the SP's default AttributeConsumingService (the
// one marked isDefault, else the first): SAML attribute name → isRequired.
func requestedAttributes(sp *ServiceProvider) map[string]bool {
	out := map[string]bool{}
	if sp.Entity == nil || len(sp.Entity.SPSSODescriptors) == 0 {
		return out
	}
	services := sp.descriptor().AttributeConsumingServices
	if len(services) == 0 {
		return out
	}
	svc := services[0]
	for _, s := range services {
		if s.IsDefault != nil && *s.IsDefault {
			svc = s
			break
		}
	}
	for _, ra := range svc.RequestedAttributes {
		out[ra.Name] = out[ra.Name] || (ra.IsRequired != nil && *ra.IsRequired)
	}
	return out
}
