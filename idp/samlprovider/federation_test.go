package samlprovider_test

import (
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	saml2 "github.com/russellhaering/gosaml2"

	"github.com/campusidp/campusidp/config"
	"github.com/campusidp/campusidp/idp/samlprovider"
	"github.com/campusidp/campusidp/internal/testldap"
)

const (
	oidEntitlement = "urn:oid:1.3.6.1.4.1.5923.1.1.1.7"
	oidTargetedID  = "urn:oid:1.3.6.1.4.1.5923.1.1.1.10"
	oidSubjectID   = config.SubjectIDName
	oidPairwiseID  = config.PairwiseIDName
)

// fedSite is an SP of the test federation's aggregate.
type fedSite struct {
	spSite
	agg samlprovider.AggregateSP
}

func newFedSite(t *testing.T, host string, agg samlprovider.AggregateSP) fedSite {
	key := testKey(t, keySP)
	site := spSite{
		EntityID: "https://" + host + "/shibboleth",
		ACS:      []string{"https://" + host + "/Shibboleth.sso/SAML2/POST"},
		SignKey:  key,
		EncKey:   &key,
	}
	agg.EntityID, agg.ACS, agg.CertB64 = site.EntityID, site.ACS[0], key.CertB64()
	return fedSite{spSite: site, agg: agg}
}

// withFederation publishes the sites (and filler SPs up to n) in an
// aggregate signed by the federation key, as a file.
func withFederation(n int, sites ...fedSite) envOption {
	return func(e *env, cfg *config.Config) {
		fedKey := testKey(e.t, keyIdPNext)
		var aggs []samlprovider.AggregateSP
		for _, s := range sites {
			aggs = append(aggs, s.agg)
			e.sites[s.EntityID] = s.spSite
		}
		md := samlprovider.SignAggregate(e.t, samlprovider.BuildAggregate(aggs, n, testKey(e.t, keySPOther).CertB64(), time.Now().Add(7*24*time.Hour)),
			fedKey.key, fedKey.cert)
		cfg.SAML.Federations = append(cfg.SAML.Federations, config.SAMLFederation{
			Name:              "testfed",
			MetadataFile:      e.writeFile("federation.xml", []byte(md)),
			SigningCertFile:   e.writeFile("federation.crt", fedKey.certPEM()),
			RequireValidUntil: true,
		})
	}
}

// withOverride adds a service_providers entry without metadata: settings
// for a federation SP.
func withOverride(c config.SAMLServiceProvider) envOption {
	return func(_ *env, cfg *config.Config) {
		cfg.SAML.ServiceProviders = append(cfg.SAML.ServiceProviders, c)
	}
}

func attributeOIDs(info *saml2.AssertionInfo) []string {
	var out []string
	for oid := range info.Values {
		out = append(out, oid)
	}
	slices.Sort(out)
	return out
}

func sorted(s ...string) []string { slices.Sort(s); return s }

var subjectIDRe = regexp.MustCompile(`^[0-9A-Za-z][0-9A-Za-z=-]{0,126}@campus\.example$`)

// TestFederationSPs: SPs known only from the federation's aggregate log in
// with no entry of their own; what each receives follows the release
// policy (R&S bundle, CoCo only requested and allowed, the default rule
// releasing what is requested, a per-SP entry overriding), and the computed
// subject identifiers are stable per SP and pairwise ones differ between
// SPs.
func TestFederationSPs(t *testing.T) {
	rs := newFedSite(t, "rs.member.example.jp", samlprovider.AggregateSP{
		Categories: []string{config.CategoryResearchAndScholarship},
	})
	coco := newFedSite(t, "coco.member.example.jp", samlprovider.AggregateSP{
		Categories: []string{config.CategoryCoCoV2},
		// Entitlements are not in the CoCo rule: requested, not released.
		Requested:    []string{"!" + oidMail, oidJaDisplayName, oidEntitlement},
		SubjectIDReq: "pairwise-id",
	})
	plain := newFedSite(t, "plain.member.example.jp", samlprovider.AggregateSP{
		Requested:    []string{"!" + oidEPPN, oidTargetedID},
		SubjectIDReq: "any",
	})
	subject := newFedSite(t, "subject.member.example.jp", samlprovider.AggregateSP{
		SubjectIDReq: "subject-id",
	})
	overridden := newFedSite(t, "override.member.example.jp", samlprovider.AggregateSP{
		Categories: []string{config.CategoryResearchAndScholarship},
	})
	e := newEnv(t, withFederation(40, rs, coco, plain, subject, overridden),
		withOverride(config.SAMLServiceProvider{EntityID: overridden.EntityID, Name: "Overridden Service", Attributes: []string{"mail"}}),
		func(_ *env, cfg *config.Config) {
			// Entitlements come from a directory attribute the fixture has.
			for i, a := range cfg.SAML.Attributes {
				if a.Name == "eduPersonEntitlement" {
					cfg.SAML.Attributes[i].LDAP = "employeeType"
				}
			}
		})
	taroJapanese(t, e.ldap)
	if st := e.prov.Registry().Federations(); len(st) != 1 || st[0].Entities != 40 {
		t.Fatalf("federation = %+v, want 40 SPs", st)
	}

	// The release decisions, as the consent pages will read them.
	release := func(site fedSite) samlprovider.Release {
		r, ok := e.prov.ReleaseForEntity(site.EntityID)
		if !ok {
			t.Fatalf("%s is not trusted", site.EntityID)
		}
		return r
	}
	if r := release(coco); !slices.Equal(r.Required, []string{"mail", "pairwise-id"}) || !slices.Equal(r.Optional, []string{"jaDisplayName"}) {
		t.Errorf("CoCo release = %+v, want mail and pairwise-id required (isRequired, SubjectIdRequirement), jaDisplayName optional", r)
	}
	if r := release(rs); len(r.Required) != 0 || len(r.Optional) != 6 {
		t.Errorf("R&S release = %+v, want the bundle of six, optional as none was requested", r)
	}

	// A federation SP logs in with no entry of its own.
	b := e.browser()
	login := func(site fedSite, first bool) *saml2.AssertionInfo {
		t.Helper()
		sp := e.serviceProvider(site.spSite)
		id, target := redirectURL(t, sp, "")
		p := b.Follow(b.Get(target))
		if first && !strings.Contains(p.Body, "Service 0") {
			t.Errorf("the login page does not name the SP by its mdui:DisplayName:\n%s", p.Body)
		}
		if first {
			p = b.enrollAndContinue(b.Follow(b.submitLogin(p, testldap.Taro)), "taro.home@example.org")
		}
		return checkResponse(t, sp, site.spSite, b.expectPost(p), id)
	}
	rsInfo := login(rs, true)
	if got, want := attributeOIDs(rsInfo), sorted(oidEPPN, oidMail, oidDisplayName, oidGivenName, oidSN, oidScopedAffil); !slices.Equal(got, want) {
		t.Errorf("R&S SP got %v, want the R&S bundle %v", got, want)
	}
	if rsInfo.NameIDFormat != samlprovider.NameIDFormatPersistent {
		t.Errorf("federation SP NameID format %q, want persistent by default", rsInfo.NameIDFormat)
	}

	cocoInfo := login(coco, false)
	if got, want := attributeOIDs(cocoInfo), sorted(oidMail, oidJaDisplayName, oidPairwiseID); !slices.Equal(got, want) {
		t.Errorf("CoCo SP got %v, want only what it requested and the policy allows %v", got, want)
	}
	plainInfo := login(plain, false)
	if got, want := attributeOIDs(plainInfo), sorted(oidEPPN, oidTargetedID, oidPairwiseID); !slices.Equal(got, want) {
		t.Errorf("SP without category got %v, want what it requested %v", got, want)
	}
	subjectInfo := login(subject, false)
	if got, want := attributeOIDs(subjectInfo), []string{oidSubjectID}; !slices.Equal(got, want) {
		t.Errorf("SP requiring subject-id got %v", got)
	}
	if got := attributeOIDs(login(overridden, false)); !slices.Equal(got, []string{oidMail}) {
		t.Errorf("the per-SP entry does not override the R&S bundle: got %v", got)
	}

	// Subject identifiers: scoped, of the allowed characters, stable per
	// SP, pairwise ones different between SPs, subject-id the same.
	pairCoco, pairPlain := cocoInfo.Values.Get(oidPairwiseID), plainInfo.Values.Get(oidPairwiseID)
	subjectID := subjectInfo.Values.Get(oidSubjectID)
	for _, v := range []string{pairCoco, pairPlain, subjectID} {
		if !subjectIDRe.MatchString(v) {
			t.Errorf("identifier %q is not a scoped OASIS subject identifier", v)
		}
	}
	if pairCoco == pairPlain {
		t.Error("pairwise-id is the same at two SPs")
	}
	if again := login(coco, false).Values.Get(oidPairwiseID); again != pairCoco {
		t.Errorf("pairwise-id changed: %q then %q", pairCoco, again)
	}
	if again := login(subject, false).Values.Get(oidSubjectID); again != subjectID {
		t.Errorf("subject-id changed: %q then %q", subjectID, again)
	}
	if got := e.prov.SubjectID(testldap.Taro.ID); got != subjectID {
		t.Errorf("subject-id %q is not the same for every SP (%q)", subjectID, got)
	}
	if pairPlain == subjectID || strings.Contains(subjectID, testldap.Taro.ID) {
		t.Error("subject identifiers reveal the account or coincide")
	}

	// eduPersonTargetedID is the persistent NameID, as a NameID element.
	eptid := plainInfo.Values[oidTargetedID]
	if len(eptid.Values) != 1 || eptid.Values[0].NameID == nil {
		t.Fatalf("eduPersonTargetedID = %+v, want one NameID value", eptid)
	}
	n := eptid.Values[0].NameID
	if n.Format != samlprovider.NameIDFormatPersistent || n.Value != plainInfo.NameID || n.NameQualifier != e.prov.EntityID() ||
		n.SPNameQualifier != plain.EntityID {
		t.Errorf("eduPersonTargetedID NameID = %+v, want the persistent NameID %q", n, plainInfo.NameID)
	}
}
