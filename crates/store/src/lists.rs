//! (in progress)

use crate::Store;

impl Store {}
