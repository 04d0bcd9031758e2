using ContinualMoE.Checkpoints;
using static TorchSharp.torch;

namespace ContinualMoE.Tests.Checkpoints;

public class NpzArchiveTests
{
    [Theory]
    [InlineData(false, 1)]
    [InlineData(true, 2)]
    [InlineData(false, 3)]
    public void ReadsEverySupportedDType(bool compressed, int version)
    {
        using var dir = new TempDirectory();
        var path = dir.File("arrays.npz");
        NpzTestFiles.WriteNpz(path, new[]
        {
            ("f4", NpzTestFiles.Npy("<f4", new long[] { 2, 2 }, NpzTestFiles.Floats(1, 2, 3, 4.5f), major: version)),
            ("f8", NpzTestFiles.Npy("<f8", new long[] { 2 }, BitConverter.GetBytes(-1.25).Concat(BitConverter.GetBytes(1e300)).ToArray(), major: version)),
            ("f2", NpzTestFiles.Npy("<f2", new long[] { 2 }, new byte[] { 0x00, 0x3E, 0x00, 0xC0 }, major: version)), // 1.5, -2
            ("i8", NpzTestFiles.Npy("<i8", new long[] { 1 }, BitConverter.GetBytes(-9_000_000_000L), major: version)),
            ("i4", NpzTestFiles.Npy("<i4", new long[] { 2 }, BitConverter.GetBytes(-5).Concat(BitConverter.GetBytes(7)).ToArray(), major: version)),
            ("u1", NpzTestFiles.Npy("|u1", new long[] { 3 }, new byte[] { 0, 128, 255 }, major: version)),
            ("b1", NpzTestFiles.Npy("|b1", new long[] { 2 }, new byte[] { 1, 0 }, major: version)),
            ("nested/name", NpzTestFiles.Npy("<f4", Array.Empty<long>(), NpzTestFiles.Floats(42), major: version)),
        }, compressed);

        var t = NpzArchive.Read(path);

        Assert.Equal(new long[] { 2, 2 }, t["f4"].shape);
        Assert.Equal(new[] { 1f, 2, 3, 4.5f }, t["f4"].data<float>().ToArray());
        Assert.Equal(new[] { -1.25, 1e300 }, t["f8"].data<double>().ToArray());
        Assert.Equal(ScalarType.Float16, t["f2"].dtype);
        Assert.Equal(new[] { 1.5f, -2f }, t["f2"].to(ScalarType.Float32).data<float>().ToArray());
        Assert.Equal(-9_000_000_000L, t["i8"].data<long>()[0]);
        Assert.Equal(new[] { -5, 7 }, t["i4"].data<int>().ToArray());
        Assert.Equal(new byte[] { 0, 128, 255 }, t["u1"].data<byte>().ToArray());
        Assert.Equal(new[] { true, false }, t["b1"].data<bool>().ToArray());
        Assert.Equal(42f, t["nested/name"].item<float>());
    }

    [Fact]
    public void FortranOrderIsReadInLogicalOrder()
    {
        using var dir = new TempDirectory();
        var path = dir.File("fortran.npz");
        // The 2x3 matrix [[1,2,3],[4,5,6]] stored column by column.
        NpzTestFiles.WriteNpz(path, new[] { ("m", NpzTestFiles.Npy("<f4", new long[] { 2, 3 }, NpzTestFiles.Floats(1, 4, 2, 5, 3, 6), fortran: true)) });

        var m = NpzArchive.Read(path)["m"];

        Assert.Equal(new long[] { 2, 3 }, m.shape);
        Assert.Equal(new[] { 1f, 2, 3, 4, 5, 6 }, m.contiguous().data<float>().ToArray());
    }

    public static IEnumerable<object[]> CorruptArchives()
    {
        object[] Case(string label, byte[] npy) => new object[] { label, npy };
        yield return Case("bad magic", "NOTNUMPY"u8.ToArray().Concat(new byte[40]).ToArray());
        yield return Case("unsupported dtype", NpzTestFiles.Npy("<c8", new long[] { 1 }, new byte[8]));
        yield return Case("big endian", NpzTestFiles.Npy(">f4", new long[] { 1 }, new byte[4]));
        yield return Case("truncated data", NpzTestFiles.Npy("<f4", new long[] { 10 }, new byte[8]));
        yield return Case("bad version", NpzTestFiles.Npy("<f4", new long[] { 1 }, new byte[4], major: 9));
    }

    [Theory]
    [MemberData(nameof(CorruptArchives))]
    public void CorruptEntryNamesFileAndEntry(string label, byte[] npy)
    {
        using var dir = new TempDirectory();
        var path = dir.File("corrupt.npz");
        NpzTestFiles.WriteNpz(path, new[] { ("good", NpzTestFiles.Npy("<f4", new long[] { 1 }, NpzTestFiles.Floats(1))), ("bad_entry", npy) });

        var error = Assert.Throws<ContinualMoEException>(() => NpzArchive.Read(path));

        Assert.Contains("corrupt.npz", error.Message);
        Assert.Contains("bad_entry.npy", error.Message);
        Assert.False(string.IsNullOrEmpty(label));
    }

    [Fact]
    public void NotAZipIsReported()
    {
        using var dir = new TempDirectory();
        var path = dir.File("plain.npz");
        File.WriteAllText(path, "just some text, definitely not a zip archive");

        var error = Assert.Throws<ContinualMoEException>(() => NpzArchive.Read(path));

        Assert.StartsWith(path + ":", error.Message);
    }
}
