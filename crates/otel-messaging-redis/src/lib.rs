mod attributes; mod carrier; mod config; pub mod envelope; mod producer; pub use producer::*; pub use config::*; pub use carrier::*; pub use attributes::*;
