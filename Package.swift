// swift-tools-version:6.0
import PackageDescription

// Release builds target x86-64-v3 (haswell: AVX2 + FMA, any x86-64 from 2013 on); a tuned build can pass
// `-Xswiftc -target-cpu -Xswiftc native`.
let simdFlags: [SwiftSetting] = [.unsafeFlags(["-target-cpu", "haswell"])]

let package = Package(
    name: "gift",
    platforms: [.macOS(.v13)],
    products: [
        .executable(name: "gift", targets: ["gift"]),
        .library(name: "GiftCore", targets: ["GiftCore"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
    ],
    targets: [
        .systemLibrary(name: "CMPI", path: "Sources/CMPI", pkgConfig: "ompi-c",
                       providers: [.apt(["libopenmpi-dev"])]),
        .systemLibrary(name: "CZstd", path: "Sources/CZstd", pkgConfig: "libzstd",
                       providers: [.apt(["libzstd-dev"])]),
        // The only target that sees mpi.h: a plain-C facade over the few MPI calls gift needs.
        .target(name: "CMPIShim", dependencies: ["CMPI"], path: "Sources/CMPIShim"),
        // OpenBLAS through dlopen, its kernel chosen from cpuid before it loads (Debian's 0.3.21 runs a
        // generic one on CPUs newer than itself); cpuid feature detection for every kernel choice.
        .target(name: "CBLASShim", path: "Sources/CBLASShim", linkerSettings: [.linkedLibrary("dl")]),
        // oneDNN through dlopen: builds without libdnnl, uses it at run time when it is installed.
        .target(name: "CDNNLShim", path: "Sources/CDNNLShim", linkerSettings: [.linkedLibrary("dl")]),
        .target(name: "GiftCore", dependencies: ["CBLASShim", "CZstd", "CMPIShim", "CDNNLShim"],
                path: "Sources/GiftCore", swiftSettings: simdFlags),
        .executableTarget(name: "gift", dependencies: [
            "GiftCore", .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ], path: "Sources/gift"),
        .testTarget(name: "GiftCoreTests", dependencies: ["GiftCore", "gift"], path: "Tests/GiftCoreTests", exclude: ["Fixtures"]),
    ]
)
