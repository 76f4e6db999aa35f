//! Each form of `files` against a real application directory: what lands where, what is left out, and
//! what is refused with which reason.

use super::*;

/// An application directory (removed on drop) with a few files.
struct App(FilesDir);

impl App {
    fn new() -> App {
        let app = App(FilesDir::new().unwrap());
        for (path, text) in [
            ("static/index.html", "<h1>hi</h1>"),
            ("static/css/site.css", "body{}"),
            ("static/notes.md", "draft"),
            ("config/app.toml", "x = 1"),
            ("README.md", "readme"),
        ] {
            let file = app.root().join(path);
            std::fs::create_dir_all(file.parent().unwrap()).unwrap();
            std::fs::write(file, text).unwrap();
        }
        app
    }

    fn root(&self) -> PathBuf {
        self.0.component("app")
    }

    /// Assembles `mounts` and lists what the guest would see, with contents.
    fn guest_sees(&self, mounts: &[FilesMount], exclude: &[&str]) -> Result<Vec<(String, String)>> {
        let dest = self.0.component("out");
        let _ = std::fs::remove_dir_all(&dest);
        let exclude: Vec<String> = exclude.iter().map(|s| s.to_string()).collect();
        assemble(&self.root(), mounts, &exclude, &dest)?;
        let mut seen = Vec::new();
        for entry in glob::glob(&format!("{}/**/*", dest.display())).unwrap() {
            let path = entry.unwrap();
            if path.is_file() {
                let guest = format!("/{}", path.strip_prefix(&dest).unwrap().display());
                seen.push((guest, std::fs::read_to_string(&path).unwrap()));
            }
        }
        seen.sort();
        Ok(seen)
    }
}

fn pattern(p: &str) -> FilesMount {
    FilesMount::Pattern(p.into())
}

fn placed(source: &str, destination: &str) -> FilesMount {
    FilesMount::Placement { source: source.into(), destination: destination.into() }
}

fn paths(seen: &[(String, String)]) -> Vec<&str> {
    seen.iter().map(|(p, _)| p.as_str()).collect()
}

#[test]
fn each_form_lands_where_spin_puts_it() {
    let app = App::new();
    let seen = app.guest_sees(&[pattern("README.md")], &[]).unwrap();
    assert_eq!(seen, [("/README.md".to_owned(), "readme".to_owned())]);
    let seen = app.guest_sees(&[pattern("static")], &[]).unwrap();
    assert_eq!(paths(&seen), ["/static/css/site.css", "/static/index.html", "/static/notes.md"]);
    let seen = app.guest_sees(&[pattern("static/**/*.css"), pattern("config/*")], &[]).unwrap();
    assert_eq!(paths(&seen), ["/config/app.toml", "/static/css/site.css"]);
    let seen = app.guest_sees(&[placed("static", "/www")], &[]).unwrap();
    assert_eq!(paths(&seen), ["/www/css/site.css", "/www/index.html", "/www/notes.md"]);
    let seen = app.guest_sees(&[placed("config/app.toml", "/etc/app.toml")], &[]).unwrap();
    assert_eq!(seen, [("/etc/app.toml".to_owned(), "x = 1".to_owned())]);
    let seen = app.guest_sees(&[placed("static", "/")], &["static/*.md"]).unwrap();
    assert_eq!(paths(&seen), ["/css/site.css", "/index.html"], "exclude_files matches paths from the app");
}

#[test]
fn what_spin_refuses_is_refused_with_its_reason() {
    let app = App::new();
    let why = |mounts: &[FilesMount], exclude: &[&str]| format!("{:#}", app.guest_sees(mounts, exclude).unwrap_err());
    assert!(why(&[pattern("static/..")], &[]).contains("can't end in a parent directory path"));
    assert!(why(&[pattern(".")], &[]).contains("can't end in a current directory path"));
    assert!(why(&[pattern("missing.txt")], &[]).contains("does not exist and doesn't appear to be a glob pattern"));
    assert!(why(&[placed("nowhere", "/x")], &[]).contains("invalid file mount source nowhere"));
    assert!(why(&[placed("README.md", "/docs/")], &[]).contains("is not a valid destination file name"));
    assert!(why(&[pattern("*")], &["[unclosed"]).contains("Invalid exclude_files glob pattern"));
    // Nothing outside the application directory, by source or by destination.
    std::fs::write(app.0.component("secret.txt"), "outside").unwrap();
    assert!(why(&[pattern("../secret.txt")], &[]).contains("within the application directory"));
    assert!(why(&[placed("../secret.txt", "/s")], &[]).contains("within the application directory"));
    assert!(why(&[placed("README.md", "/../../escaped")], &[]).contains("within the application directory"));
    std::os::unix::fs::symlink(app.0.component("secret.txt"), app.root().join("static/link.txt")).unwrap();
    assert!(why(&[pattern("static/*.txt")], &[]).contains("outside the application directory"));
    assert!(!app.0.component("escaped").exists());
}
