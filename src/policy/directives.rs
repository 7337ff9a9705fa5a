//! Cache directives of one policy: their values, their conflicts, and their rendering.
//!
//! The same set serves `Cache-Control` (RFC 9111 section 5.2.2, RFC 5861 for the `stale-*`
//! extensions, RFC 8246 for `immutable`) and `CDN-Cache-Control` (RFC 9213), whose field is a
//! structured-field dictionary with the same directive names; the rendering used here
//! (`public, max-age=86400`) is valid for both. Values are rendered once, at load.

use std::time::Duration;

/// One directive a policy file may set, named as in the header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Directive {
    /// `public`: shared caches may store it even when they otherwise would not.
    Public,
    /// `private`: only the user's own cache may store it.
    Private,
    /// `no-cache`: caches must revalidate before every reuse.
    NoCache,
    /// `no-store`: no cache may store it.
    NoStore,
    /// `no-transform`: intermediaries must not change the content (and we don't compress).
    NoTransform,
    /// `max-age`: freshness lifetime.
    MaxAge,
    /// `s-maxage`: freshness lifetime for shared caches.
    SMaxAge,
    /// `stale-while-revalidate` (RFC 5861 section 3).
    StaleWhileRevalidate,
    /// `stale-if-error` (RFC 5861 section 4).
    StaleIfError,
    /// `immutable` (RFC 8246): no revalidation while fresh.
    Immutable,
}

impl Directive {
    /// Every directive, in rendering order.
    pub const ALL: [Directive; 10] = [
        Directive::Public,
        Directive::Private,
        Directive::NoCache,
        Directive::NoStore,
        Directive::NoTransform,
        Directive::MaxAge,
        Directive::SMaxAge,
        Directive::StaleWhileRevalidate,
        Directive::StaleIfError,
        Directive::Immutable,
    ];

    /// The directive (and policy-file key) name.
    pub fn name(self) -> &'static str {
        match self {
            Directive::Public => "public",
            Directive::Private => "private",
            Directive::NoCache => "no-cache",
            Directive::NoStore => "no-store",
            Directive::NoTransform => "no-transform",
            Directive::MaxAge => "max-age",
            Directive::SMaxAge => "s-maxage",
            Directive::StaleWhileRevalidate => "stale-while-revalidate",
            Directive::StaleIfError => "stale-if-error",
            Directive::Immutable => "immutable",
        }
    }

    /// The directive named `name`, if any.
    pub fn from_name(name: &str) -> Option<Directive> {
        Directive::ALL.into_iter().find(|d| d.name() == name)
    }

    /// Whether the value is a duration (otherwise a boolean).
    pub fn takes_duration(self) -> bool {
        matches!(
            self,
            Directive::MaxAge
                | Directive::SMaxAge
                | Directive::StaleWhileRevalidate
                | Directive::StaleIfError
        )
    }
}

/// The directive values of a `Cache-Control` or `CDN-Cache-Control` field.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Directives {
    /// `public`.
    pub public: bool,
    /// `private`.
    pub private: bool,
    /// `no-cache`.
    pub no_cache: bool,
    /// `no-store`.
    pub no_store: bool,
    /// `no-transform`.
    pub no_transform: bool,
    /// `max-age`.
    pub max_age: Option<Duration>,
    /// `s-maxage`.
    pub s_maxage: Option<Duration>,
    /// `stale-while-revalidate`.
    pub stale_while_revalidate: Option<Duration>,
    /// `stale-if-error`.
    pub stale_if_error: Option<Duration>,
    /// `immutable`.
    pub immutable: bool,
}

/// Why a set of directives is refused: `field` is at fault, `other` (when given) is the
/// directive it contradicts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Invalid {
    /// The directive reported.
    pub field: Directive,
    /// The directive it conflicts with; `None` when it is wrong on its own.
    pub other: Option<Directive>,
    /// Why.
    pub reason: &'static str,
}

impl Directives {
    /// Sets a boolean directive.
    pub fn set_flag(&mut self, directive: Directive, on: bool) {
        match directive {
            Directive::Public => self.public = on,
            Directive::Private => self.private = on,
            Directive::NoCache => self.no_cache = on,
            Directive::NoStore => self.no_store = on,
            Directive::NoTransform => self.no_transform = on,
            Directive::Immutable => self.immutable = on,
            Directive::MaxAge
            | Directive::SMaxAge
            | Directive::StaleWhileRevalidate
            | Directive::StaleIfError => {}
        }
    }

    /// Sets a duration directive.
    pub fn set_duration(&mut self, directive: Directive, value: Duration) {
        match directive {
            Directive::MaxAge => self.max_age = Some(value),
            Directive::SMaxAge => self.s_maxage = Some(value),
            Directive::StaleWhileRevalidate => self.stale_while_revalidate = Some(value),
            Directive::StaleIfError => self.stale_if_error = Some(value),
            _ => {}
        }
    }

    /// Whether `directive` is present (true, or a duration given).
    pub fn is_set(&self, directive: Directive) -> bool {
        match directive {
            Directive::Public => self.public,
            Directive::Private => self.private,
            Directive::NoCache => self.no_cache,
            Directive::NoStore => self.no_store,
            Directive::NoTransform => self.no_transform,
            Directive::Immutable => self.immutable,
            Directive::MaxAge => self.max_age.is_some(),
            Directive::SMaxAge => self.s_maxage.is_some(),
            Directive::StaleWhileRevalidate => self.stale_while_revalidate.is_some(),
            Directive::StaleIfError => self.stale_if_error.is_some(),
        }
    }

    fn duration(&self, directive: Directive) -> Option<Duration> {
        match directive {
            Directive::MaxAge => self.max_age,
            Directive::SMaxAge => self.s_maxage,
            Directive::StaleWhileRevalidate => self.stale_while_revalidate,
            Directive::StaleIfError => self.stale_if_error,
            _ => None,
        }
    }

    /// The longest lifetime any directive grants (for the limit on error responses).
    pub fn longest(&self) -> Option<(Directive, Duration)> {
        Directive::ALL
            .into_iter()
            .filter_map(|d| self.duration(d).map(|v| (d, v)))
            .max_by_key(|&(_, v)| v)
    }

    /// Refuses contradictory combinations (RFC 9111 section 5.2.2, RFC 5861, RFC 8246).
    pub fn validate(&self) -> Result<(), Invalid> {
        use Directive::*;
        const CONFLICTS: [(Directive, Directive, &str); 11] = [
            (Private, Public, "a response is either public or private"),
            (
                MaxAge,
                NoStore,
                "no-store forbids storing, so a lifetime means nothing",
            ),
            (
                SMaxAge,
                NoStore,
                "no-store forbids storing, so a lifetime means nothing",
            ),
            (
                StaleWhileRevalidate,
                NoStore,
                "no-store leaves nothing stale to serve",
            ),
            (
                StaleIfError,
                NoStore,
                "no-store leaves nothing stale to serve",
            ),
            (
                Immutable,
                NoStore,
                "no-store forbids storing what immutable keeps",
            ),
            (
                Public,
                NoStore,
                "public allows storing what no-store forbids",
            ),
            (
                Immutable,
                NoCache,
                "no-cache revalidates every time, immutable never",
            ),
            (
                StaleWhileRevalidate,
                NoCache,
                "no-cache forbids serving without revalidation",
            ),
            (
                SMaxAge,
                Private,
                "s-maxage is for shared caches, which private excludes",
            ),
            (
                Immutable,
                Private,
                "immutable is pointless on content only one user sees",
            ),
        ];
        for (field, other, reason) in CONFLICTS {
            if self.is_set(field) && self.is_set(other) {
                return Err(Invalid {
                    field,
                    other: Some(other),
                    reason,
                });
            }
        }
        if self.immutable && self.max_age.is_none() {
            return Err(Invalid {
                field: Immutable,
                other: None,
                reason: "immutable only holds while fresh, so it needs a max-age (RFC 8246 section 2)",
            });
        }
        Ok(())
    }

    /// The field value, e.g. `public, max-age=86400, stale-while-revalidate=8640`; `None`
    /// when no directive is set.
    pub fn render(&self) -> Option<String> {
        let mut parts: Vec<String> = Vec::new();
        for directive in Directive::ALL {
            if let Some(value) = self.duration(directive) {
                parts.push(format!("{}={}", directive.name(), value.as_secs()));
            } else if self.is_set(directive) {
                parts.push(directive.name().to_owned());
            }
        }
        (!parts.is_empty()).then(|| parts.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type Flags = &'static [Directive];
    type Lifetimes = &'static [(Directive, u64)];

    fn with(flags: &[Directive], durations: &[(Directive, u64)]) -> Directives {
        let mut d = Directives::default();
        for &f in flags {
            d.set_flag(f, true);
        }
        for &(k, secs) in durations {
            d.set_duration(k, Duration::from_secs(secs));
        }
        d
    }

    #[test]
    fn names_round_trip() {
        for d in Directive::ALL {
            assert_eq!(Directive::from_name(d.name()), Some(d));
        }
        assert_eq!(Directive::from_name("max_age"), None);
    }

    #[test]
    fn rendering_follows_a_fixed_order() {
        use Directive::*;
        let table: &[(Flags, Lifetimes, Option<&str>)] = &[
            (&[], &[], None),
            (&[NoCache], &[], Some("no-cache")),
            (
                &[Public],
                &[(StaleWhileRevalidate, 8640), (MaxAge, 86400)],
                Some("public, max-age=86400, stale-while-revalidate=8640"),
            ),
            (
                &[Immutable, Public],
                &[(MaxAge, 31_536_000)],
                Some("public, max-age=31536000, immutable"),
            ),
            (
                &[Public, NoTransform],
                &[(SMaxAge, 3600), (MaxAge, 60), (StaleIfError, 0)],
                Some("public, no-transform, max-age=60, s-maxage=3600, stale-if-error=0"),
            ),
            (&[Private, NoStore], &[], Some("private, no-store")),
        ];
        for (flags, durations, expected) in table {
            let d = with(flags, durations);
            assert_eq!(d.render().as_deref(), *expected, "{d:?}");
        }
    }

    #[test]
    fn conflicts_are_refused() {
        use Directive::*;
        let table: &[(Flags, Lifetimes, Directive, Option<Directive>)] = &[
            (&[Public, Private], &[], Private, Some(Public)),
            (&[NoStore], &[(MaxAge, 60)], MaxAge, Some(NoStore)),
            (&[NoStore], &[(SMaxAge, 60)], SMaxAge, Some(NoStore)),
            (
                &[NoStore],
                &[(StaleWhileRevalidate, 1)],
                StaleWhileRevalidate,
                Some(NoStore),
            ),
            (
                &[NoStore],
                &[(StaleIfError, 1)],
                StaleIfError,
                Some(NoStore),
            ),
            (&[NoStore, Immutable], &[(MaxAge, 1)], MaxAge, Some(NoStore)),
            (&[NoStore, Public], &[], Public, Some(NoStore)),
            (
                &[NoCache, Immutable],
                &[(MaxAge, 60)],
                Immutable,
                Some(NoCache),
            ),
            (
                &[NoCache],
                &[(StaleWhileRevalidate, 9)],
                StaleWhileRevalidate,
                Some(NoCache),
            ),
            (&[Private], &[(SMaxAge, 60)], SMaxAge, Some(Private)),
            (
                &[Private, Immutable],
                &[(MaxAge, 60)],
                Immutable,
                Some(Private),
            ),
            (&[Immutable], &[], Immutable, None),
            (&[Public, Immutable], &[(SMaxAge, 60)], Immutable, None),
        ];
        for (flags, durations, field, other) in table {
            let err = with(flags, durations)
                .validate()
                .expect_err("must be refused");
            assert_eq!(
                (err.field, err.other),
                (*field, *other),
                "{flags:?} {durations:?}"
            );
        }
    }

    #[test]
    fn compatible_combinations_pass() {
        use Directive::*;
        let table: &[(Flags, Lifetimes)] = &[
            (&[NoCache, NoStore], &[]),
            (&[NoCache, Public], &[(MaxAge, 0), (StaleIfError, 60)]),
            (&[Public, Immutable], &[(MaxAge, 1)]),
            (&[Private], &[(MaxAge, 60), (StaleWhileRevalidate, 5)]),
            (&[Public, NoTransform], &[(SMaxAge, 60)]),
            (&[Public], &[(MaxAge, 0)]),
        ];
        for (flags, durations) in table {
            assert_eq!(
                with(flags, durations).validate(),
                Ok(()),
                "{flags:?} {durations:?}"
            );
        }
    }

    #[test]
    fn longest_lifetime() {
        use Directive::*;
        let d = with(&[], &[(MaxAge, 60), (StaleIfError, 600), (SMaxAge, 120)]);
        assert_eq!(d.longest(), Some((StaleIfError, Duration::from_secs(600))));
        assert_eq!(Directives::default().longest(), None);
    }
}
