//! The module resolver and loader of one sandbox: they resolve only the module ids of
//! the bundle being declared, plus the host module `fen:sdk` (already evaluated when
//! any extension code runs).
//!
//! QuickJS resolves a module's static imports while the module is declared, so the
//! adapter opens the loader for the declaration of each bundle's entry and closes it
//! before evaluation. Every later request (a dynamic `import()`, from top-level code
//! or from a method) then fails, whatever the specifier.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use rquickjs::loader::{ImportAttributes, Loader, Resolver};
use rquickjs::module::Declared;
use rquickjs::{Ctx, Error, Module};

use super::prelude::SDK_MODULE_ID;

/// What the loader may load right now.
#[derive(Debug, Default)]
pub(crate) struct LoaderState {
    /// Module id → code of the bundle being declared; `None` while closed.
    open: Option<HashMap<String, String>>,
}

impl LoaderState {
    /// Allows the modules of one bundle.
    pub(crate) fn open(&mut self, modules: HashMap<String, String>) {
        self.open = Some(modules);
    }

    /// Refuses everything.
    pub(crate) fn close(&mut self) {
        self.open = None;
    }
}

/// Shared between [`SandboxResolver`] and [`SandboxLoader`].
pub(crate) type SharedLoaderState = Rc<RefCell<LoaderState>>;

/// Resolves a specifier to itself if it is allowed: module specifiers in a bundle
/// are already exact module ids (spec 30 §3.5).
pub(crate) struct SandboxResolver(pub(crate) SharedLoaderState);

/// Compiles the code of an allowed module id.
pub(crate) struct SandboxLoader(pub(crate) SharedLoaderState);

impl Resolver for SandboxResolver {
    fn resolve<'js>(
        &mut self,
        _ctx: &Ctx<'js>,
        base: &str,
        name: &str,
        _attributes: Option<ImportAttributes<'js>>,
    ) -> rquickjs::Result<String> {
        let state = self.0.borrow();
        let Some(modules) = &state.open else {
            return Err(Error::new_resolving_message(
                base,
                name,
                "import() is not available in the fen sandbox",
            ));
        };
        if name == SDK_MODULE_ID || modules.contains_key(name) {
            Ok(name.to_owned())
        } else {
            Err(Error::new_resolving_message(
                base,
                name,
                "not a module of this bundle",
            ))
        }
    }
}

impl Loader for SandboxLoader {
    fn load<'js>(
        &mut self,
        ctx: &Ctx<'js>,
        name: &str,
        _attributes: Option<ImportAttributes<'js>>,
    ) -> rquickjs::Result<Module<'js, Declared>> {
        // Clone the code out: declaring resolves the module's own imports, which
        // calls back into the resolver and this loader.
        let code = {
            let state = self.0.borrow();
            state
                .open
                .as_ref()
                .and_then(|modules| modules.get(name))
                .cloned()
        };
        let Some(code) = code else {
            return Err(Error::new_loading_message(
                name,
                "not a module of this bundle",
            ));
        };
        let module = Module::declare(ctx.clone(), name, code)?;
        module.meta()?.set("url", name)?;
        Ok(module)
    }
}
