// Reading /proc/self/mountinfo the way mount(8) does.

#include "catch_compat.hpp"

#include "euphoria/cli/mount_table.hpp"

using euphoria::cli::mounted_here;

TEST_CASE("a euphoria mount of the tenant on the folder is found", "[cli][mount]") {
    const std::string info =
        "22 1 0:21 / /proc rw,nosuid shared:12 - proc proc rw\n"
        "97 22 0:52 / /mnt/rec ro,nosuid,nodev,relatime shared:50 - fuse.euphoria acme "
        "ro,user_id=0,group_id=0\n"
        "98 22 0:53 / /mnt/my\\040recs ro,relatime - fuse.euphoria acme ro\n"
        "99 22 0:54 / /mnt/other ro,relatime - fuse.sshfs acme ro\n";
    CHECK(mounted_here(info, "acme", "/mnt/rec"));
    CHECK(mounted_here(info, "acme", "/mnt/my recs"));  // \040 is a space
    CHECK_FALSE(mounted_here(info, "other", "/mnt/rec"));  // another tenant
    CHECK_FALSE(mounted_here(info, "acme", "/mnt"));
    CHECK_FALSE(mounted_here(info, "acme", "/mnt/other"));  // not ours
    CHECK_FALSE(mounted_here("", "acme", "/mnt/rec"));
    CHECK_FALSE(mounted_here("garbage\n- - -\n", "acme", "/mnt/rec"));
}
