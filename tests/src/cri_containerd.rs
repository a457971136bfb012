//! A private containerd ready for CRI calls, as the CRI tests and the CRI density bench use it.

use std::time::Duration;

use crate::{bytes_field, pause_image_archive, wait_until, Containerd, ContainerdBuilder, CriClient, Proto};
use crate::{BUSYBOX_REF, PAUSE_REF};

/// The containerd namespace the CRI plugin keeps its images and containers in.
pub const K8S_NS: &str = "k8s.io";

impl ContainerdBuilder {
    /// Starts containerd with the CRI plugin, the pause image as its sandbox image, and the
    /// pause and busybox images imported into k8s.io. Returns once CRI sees both images: it
    /// learns of imports from containerd's events, and would try a pull before that.
    pub fn start_cri_with_images(self) -> Result<(Containerd, CriClient), String> {
        let mut ctrd = self
            .cri(true)
            .cri_option(&format!("sandbox_image = \"{PAUSE_REF}\""))
            .start();
        let archive = ctrd.dir().join("pause.oci.tar");
        pause_image_archive(&archive, PAUSE_REF)
            .map_err(|e| format!("failed to build the pause image {}: {e}", archive.display()))?;
        ctrd.ctr_ok(&["-n", K8S_NS, "images", "import", &archive.to_string_lossy()]);
        ctrd.import_busybox(K8S_NS);
        let cri = CriClient::new(ctrd.address());
        for image in [PAUSE_REF, BUSYBOX_REF] {
            let known = wait_until(Duration::from_secs(10), || {
                let spec = Proto::new().message(1, Proto::new().string(1, image));
                cri.call("ImageService", "ImageStatus", spec)
                    .is_ok_and(|resp| !bytes_field(&resp, 1).is_empty())
            });
            if !known {
                return Err(format!("CRI does not see {image}:\n{}", ctrd.log_tail(40)));
            }
        }
        Ok((ctrd, cri))
    }
}
