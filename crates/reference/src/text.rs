//! What every validated-text type of this crate implements alike.

/// `Display` and `AsRef<str>` for a type that keeps its validated text in `$field`; with
/// `parse_at`, also `FromStr` through the type's `parse_at(text, 0)`.
macro_rules! text_type {
    ($ty:ty, $field:tt) => {
        impl ::std::fmt::Display for $ty {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(&self.$field)
            }
        }

        impl AsRef<str> for $ty {
            fn as_ref(&self) -> &str {
                &self.$field
            }
        }
    };
    ($ty:ty, $field:tt, parse_at) => {
        text_type!($ty, $field);

        impl ::std::str::FromStr for $ty {
            type Err = $crate::ReferenceError;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                <$ty>::parse_at(s, 0)
            }
        }
    };
}
