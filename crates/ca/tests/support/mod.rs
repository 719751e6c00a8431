//! What the certificate tests share.

pub(crate) mod openssl;
