//! The boot tree: what a requested name means, for every protocol that serves files.
//!
//! TFTP (and HTTP) hand a client's name to [`BootTree::resolve`] and get a [`BootFile`] back, or
//! an [`AccessError`] they turn into their own answer. One resolver decides, so the rules are
//! the same whichever protocol asks:
//!
//! 1. The name is validated and normalised ([`root`]'s rules: UTF-8, no control characters,
//!    `\` as `/`, no `..`, no temporary upload names). A name that breaks them is refused
//!    before anything else sees it.
//! 2. A [`Generator`], when one is installed, may answer the normalised name with bytes it
//!    makes (per-machine boot scripts); they are served from memory like a hot file.
//! 3. Otherwise the file is opened below the root directory fd, never leaving it, and only a
//!    regular file is served. A file that resolves into the write inbox (`tftp.write.dir`) is
//!    refused unless the caller says this client may read it ([`Inbox::Readable`]).
//! 4. Its bytes come from the shared in-memory copy when it fits the cache budget (concurrent
//!    readers of one image share one copy, whatever protocol they use), else from the file.
//!
//! This crate knows no protocol and depends on no service crate. The blocking parts (opening,
//! `fstat`, reading) are plain calls; callers run them off the async threads.

pub mod cache;
pub mod root;

use std::fmt;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Instant;

pub use cache::Contents;
pub use root::{AccessError, CommitOutcome, FileIdentity, Root, Upload, WritePolicy};

use cache::FileCache;
use root::Name;

/// What the boot tree is built from: the `tftp` section's root, cache budget and inbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TreeConfig {
    /// The directory served (`tftp.root`).
    pub root: PathBuf,
    /// Bytes of hot files kept in memory (`tftp.cache_size`).
    pub cache_size: u64,
    /// The write inbox, relative to the root (`tftp.write.dir`).
    pub inbox: PathBuf,
}

impl TreeConfig {
    /// The tree a `tftp` section describes.
    pub fn from_tftp(config: &kindling_config::TftpConfig) -> TreeConfig {
        TreeConfig {
            root: config.root.clone(),
            cache_size: config.cache_size,
            inbox: config.write.dir.clone(),
        }
    }
}

/// Whether a request may be answered with a file inside the write inbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Inbox {
    /// The inbox holds switch configs (password hashes, SNMP communities): refused.
    Hidden,
    /// The client may read it back (TFTP restores from `tftp.write.read_from`).
    Readable,
}

/// One request for a file.
#[derive(Debug, Clone, Copy)]
pub struct Lookup<'a> {
    /// The name exactly as the client sent it.
    pub name: &'a [u8],
    /// The client's address (generated files may depend on it).
    pub client: IpAddr,
    pub inbox: Inbox,
}

/// Who asks for a generated file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Client {
    pub address: IpAddr,
}

/// Answers some names with bytes made on request instead of a file on disk (a machine's own
/// boot script). Called with the normalised name (components joined by `/`) after the name
/// rules passed; `None` leaves the name to the disk.
pub trait Generator: Send + Sync + fmt::Debug {
    fn generate(&self, name: &str, client: &Client) -> Option<Result<Vec<u8>, AccessError>>;
}

/// Where a served file's bytes come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// A file below the root, with what identifies its content.
    Disk(FileIdentity),
    /// Bytes a [`Generator`] made for this request.
    Generated,
}

/// A file ready to be served.
#[derive(Debug, Clone)]
pub struct BootFile {
    /// The normalised name inside the tree, for logs.
    pub relative: String,
    pub origin: Origin,
    pub contents: Contents,
}

impl BootFile {
    /// The length in bytes.
    pub fn len(&self) -> u64 {
        self.contents.len()
    }

    /// Whether the file is empty.
    pub fn is_empty(&self) -> bool {
        self.contents.is_empty()
    }
}

/// The boot tree, shared by every service that serves files. Cheap to clone: clones share the
/// root, the in-memory copies and the generator.
#[derive(Debug, Clone)]
pub struct BootTree {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    layout: RwLock<Arc<Layout>>,
    cache: FileCache,
    generator: RwLock<Option<Arc<dyn Generator>>>,
}

#[derive(Debug)]
struct Layout {
    config: TreeConfig,
    root: Arc<Root>,
}

/// A tree opened by [`BootTree::prepare`], not yet in use.
#[derive(Debug)]
pub struct PreparedLayout(Layout);

impl BootTree {
    /// Opens the root directory. Fails when it cannot be opened as a directory.
    pub fn open(config: &TreeConfig) -> std::io::Result<BootTree> {
        let PreparedLayout(layout) = BootTree::prepare(config)?;
        Ok(BootTree {
            shared: Arc::new(Shared {
                cache: FileCache::new(config.cache_size),
                layout: RwLock::new(Arc::new(layout)),
                generator: RwLock::new(None),
            }),
        })
    }

    /// Opens the root of a new config without using it yet, so that a reload can check every
    /// service before any of them changes; [`BootTree::install`] puts it in place.
    pub fn prepare(config: &TreeConfig) -> std::io::Result<PreparedLayout> {
        let root = Root::open(&config.root)?;
        Ok(PreparedLayout(Layout {
            config: config.clone(),
            root: Arc::new(root),
        }))
    }

    /// Serves requests that arrive from now on from the prepared root. The in-memory copies
    /// stay: they are keyed by what the file is (device, inode, size, mtime), not by its name.
    /// A changed cache budget takes effect at the next start.
    pub fn install(&self, prepared: PreparedLayout) {
        *self
            .shared
            .layout
            .write()
            .unwrap_or_else(PoisonError::into_inner) = Arc::new(prepared.0);
    }

    /// Installs (or with `None`, removes) the generator asked before the disk.
    pub fn set_generator(&self, generator: Option<Arc<dyn Generator>>) {
        *self
            .shared
            .generator
            .write()
            .unwrap_or_else(PoisonError::into_inner) = generator;
    }

    /// The root directory in use, for the write path (uploads) and for logs.
    pub fn root(&self) -> Arc<Root> {
        Arc::clone(&self.layout().root)
    }

    /// The configured path of the root in use.
    pub fn root_path(&self) -> PathBuf {
        self.layout().config.root.clone()
    }

    /// The write inbox in use, relative to the root.
    pub fn inbox(&self) -> PathBuf {
        self.layout().config.inbox.clone()
    }

    /// What `lookup.name` means: a generated file, a file below the root, or why not. Blocking
    /// (opens and `fstat`s); must run inside a tokio runtime, since the first reader of a hot
    /// file starts loading it into memory in the background.
    pub fn resolve(&self, lookup: &Lookup<'_>, now: Instant) -> Result<BootFile, AccessError> {
        let name = Name::parse(lookup.name)
            .map_err(|reason| root::refuse("read", lookup.name, AccessError::forbidden(reason)))?;
        let relative = name.relative();
        if let Some(generator) = self.generator() {
            let client = Client {
                address: lookup.client,
            };
            if let Some(generated) = generator.generate(&relative, &client) {
                return Ok(BootFile {
                    relative,
                    origin: Origin::Generated,
                    contents: Contents::Memory(generated?.into()),
                });
            }
        }
        let layout = self.layout();
        let opened = layout.root.open_read(lookup.name)?;
        if lookup.inbox == Inbox::Hidden
            && layout.root.is_inside(&layout.config.inbox, &opened.file)?
        {
            return Err(root::refuse(
                "read",
                lookup.name,
                AccessError::forbidden(
                    "the file is in the upload directory (tftp.write.dir) and this client may not read it (tftp.write.read_from)",
                ),
            ));
        }
        let contents = self
            .shared
            .cache
            .contents(opened.identity, opened.file, opened.len, now);
        Ok(BootFile {
            relative: opened.relative,
            origin: Origin::Disk(opened.identity),
            contents,
        })
    }

    /// Drops in-memory copies nobody has read for a while; call it now and then.
    pub fn evict_idle(&self, now: Instant) {
        self.shared.cache.evict_idle(now);
    }

    fn layout(&self) -> Arc<Layout> {
        Arc::clone(
            &self
                .shared
                .layout
                .read()
                .unwrap_or_else(PoisonError::into_inner),
        )
    }

    fn generator(&self) -> Option<Arc<dyn Generator>> {
        self.shared
            .generator
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}
