using System.IO.Compression;
using System.Text;

namespace ContinualMoE.Tests.Checkpoints;

/// <summary>Writes .npy/.npz bytes by hand, the way NumPy lays them out, independent of the library's reader.</summary>
internal static class NpzTestFiles
{
    public static byte[] Npy(string descr, long[] shape, byte[] data, bool fortran = false, int major = 1)
    {
        var shapeText = shape.Length == 1 ? $"({shape[0]},)" : "(" + string.Join(", ", shape) + ")";
        var dict = $"{{'descr': '{descr}', 'fortran_order': {(fortran ? "True" : "False")}, 'shape': {shapeText}, }}";
        var prefix = 6 + 2 + (major == 1 ? 2 : 4);
        // NumPy pads with spaces and a final newline so that the data starts 64-byte aligned.
        var total = (prefix + dict.Length + 1 + 63) / 64 * 64;
        var header = dict + new string(' ', total - prefix - dict.Length - 1) + "\n";
        var bytes = new List<byte> { 0x93 };
        bytes.AddRange(Encoding.ASCII.GetBytes("NUMPY"));
        bytes.Add((byte)major);
        bytes.Add(0);
        bytes.AddRange(major == 1 ? BitConverter.GetBytes((ushort)header.Length) : BitConverter.GetBytes((uint)header.Length));
        bytes.AddRange(Encoding.ASCII.GetBytes(header));
        bytes.AddRange(data);
        return bytes.ToArray();
    }

    public static byte[] Floats(params float[] values) => values.SelectMany(BitConverter.GetBytes).ToArray();

    public static void WriteNpz(string path, IEnumerable<(string Key, byte[] Npy)> arrays, bool compressed = false)
    {
        using var file = File.Create(path);
        using var zip = new ZipArchive(file, ZipArchiveMode.Create);
        foreach (var (key, npy) in arrays)
        {
            var entry = zip.CreateEntry(key + ".npy", compressed ? CompressionLevel.Optimal : CompressionLevel.NoCompression);
            using var stream = entry.Open();
            stream.Write(npy);
        }
    }
}
