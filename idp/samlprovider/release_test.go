package samlprovider

import (
	"slices"
	"testing"

	"github.com/crewjam/saml"

	"github.com/campusidp/campusidp/config"
)

// spRequesting is an SP whose metadata requests the given SAML names (a
// "!" prefix marks isRequired) and says info.
func spRequesting(info EntityInfo, cfg config.SAMLServiceProvider, names ...string) *ServiceProvider {
	var ras []saml.RequestedAttribute
	for _, n := range names {
		required := n[0] == '!'
		if required {
			n = n[1:]
		}
		ras = append(ras, saml.RequestedAttribute{Attribute: saml.Attribute{Name: n}, IsRequired: &required})
	}
	desc := saml.SPSSODescriptor{AttributeConsumingServices: []saml.AttributeConsumingService{{RequestedAttributes: ras}}}
	return &ServiceProvider{Config: cfg, Info: info, Entity: &saml.EntityDescriptor{SPSSODescriptors: []saml.SPSSODescriptor{desc}}}
}

func TestDecideRelease(t *testing.T) {
	defs := config.DefaultSAMLAttributes()
	oid := map[string]string{}
	for _, d := range defs {
		oid[d.Name] = d.OID
	}
	policy := config.Default().SAML.Release
	policy.RegistrationAuthorities = []config.SAMLReleaseRule{
		{Match: "https://www.gakunin.jp", Mode: config.ReleaseRequested, Attributes: []string{"eduPersonPrincipalName", "eduPersonEntitlement"}},
	}
	rs := EntityInfo{Categories: []string{config.CategoryResearchAndScholarship}}
	coco := EntityInfo{Categories: []string{config.CategoryCoCoV1}}
	gakunin := EntityInfo{RegistrationAuthority: "https://www.gakunin.jp"}
	tests := []struct {
		name               string
		sp                 *ServiceProvider
		required, optional []string
	}{
		{"nothing requested, no category: nothing", spRequesting(EntityInfo{}, config.SAMLServiceProvider{}), nil, nil},
		{"default rule: what is requested", spRequesting(EntityInfo{}, config.SAMLServiceProvider{}, "!"+oid["mail"], oid["jasn"]),
			[]string{"mail"}, []string{"jasn"}},
		{"default rule: entitlements are campus-internal", spRequesting(EntityInfo{}, config.SAMLServiceProvider{}, "!"+oid["eduPersonEntitlement"]), nil, nil},
		{"unknown requested names are ignored", spRequesting(EntityInfo{}, config.SAMLServiceProvider{}, "urn:oid:9.9.9", "!"+oid["sn"]),
			[]string{"sn"}, nil},
		{"R&S: the bundle, requested or not", spRequesting(rs, config.SAMLServiceProvider{}, "!"+oid["mail"]),
			[]string{"mail"}, []string{"eduPersonPrincipalName", "eduPersonScopedAffiliation", "displayName", "givenName", "sn"}},
		{"R&S: a category rule replaces the default one", spRequesting(rs, config.SAMLServiceProvider{}, oid["jasn"]),
			nil, []string{"eduPersonPrincipalName", "eduPersonScopedAffiliation", "mail", "displayName", "givenName", "sn"}},
		{"CoCo: only requested and allowed", spRequesting(coco, config.SAMLServiceProvider{}, "!"+oid["eduPersonPrincipalName"], oid["eduPersonEntitlement"]),
			[]string{"eduPersonPrincipalName"}, nil},
		{"registration authority rule", spRequesting(gakunin, config.SAMLServiceProvider{}, "!"+oid["eduPersonEntitlement"], oid["mail"]),
			[]string{"eduPersonEntitlement"}, nil},
		{"authority and category rules add up", spRequesting(EntityInfo{RegistrationAuthority: gakunin.RegistrationAuthority, Categories: coco.Categories},
			config.SAMLServiceProvider{}, oid["eduPersonEntitlement"], oid["mail"]),
			nil, []string{"eduPersonEntitlement", "mail"}},
		{"per-SP list wins over the rules", spRequesting(rs, config.SAMLServiceProvider{Attributes: []string{"jaou", "mail"}}, oid["sn"]),
			[]string{"mail", "jaou"}, nil},
		{"SubjectIdRequirement subject-id", spRequesting(EntityInfo{SubjectIDRequirement: "subject-id"}, config.SAMLServiceProvider{}),
			[]string{"subject-id"}, nil},
		{"SubjectIdRequirement any: pairwise", spRequesting(EntityInfo{SubjectIDRequirement: "any"}, config.SAMLServiceProvider{}),
			[]string{"pairwise-id"}, nil},
		{"SubjectIdRequirement none", spRequesting(EntityInfo{SubjectIDRequirement: "none"}, config.SAMLServiceProvider{}), nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := decideRelease(tt.sp, defs, policy)
			if !slices.Equal(got.Required, tt.required) || !slices.Equal(got.Optional, tt.optional) {
				t.Errorf("release = %+v, want required %v optional %v", got, tt.required, tt.optional)
			}
		})
	}
}
