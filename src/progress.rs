//! Progress bars on standard error for the long library jobs (building an index, an audit's
//! rows, counting an index's tokens): one constructor, hidden when the caller turned progress off.

/// A bar of `total` steps drawn with the indicatif `template`, or a hidden one when `enabled`
/// is false (it accepts the same calls and draws nothing).
pub fn bar(total: u64, enabled: bool, template: &str) -> indicatif::ProgressBar {
    if !enabled {
        return indicatif::ProgressBar::hidden();
    }
    let pb = indicatif::ProgressBar::new(total);
    pb.set_style(indicatif::ProgressStyle::with_template(template).expect("valid template"));
    pb
}
