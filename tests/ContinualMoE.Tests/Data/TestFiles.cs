using System.Buffers.Binary;
using System.IO.Compression;
using System.Text;
using ContinualMoE.Data;

namespace ContinualMoE.Tests.Data;

/// <summary>Writes small files in real dataset formats for loader tests.</summary>
internal static class TestFiles
{
    /// <summary>A minimal PNG (8-bit grey or RGB, no interlace, filter 0 on every row).</summary>
    public static byte[] EncodePng(RawImage image)
    {
        using var output = new MemoryStream();
        output.Write([0x89, (byte)'P', (byte)'N', (byte)'G', 0x0D, 0x0A, 0x1A, 0x0A]);
        var header = new byte[13];
        BinaryPrimitives.WriteInt32BigEndian(header, image.Width);
        BinaryPrimitives.WriteInt32BigEndian(header.AsSpan(4), image.Height);
        header[8] = 8;                                   // bit depth
        header[9] = (byte)(image.Channels == 3 ? 2 : 0); // colour type: RGB or grey
        WriteChunk(output, "IHDR", header);
        using (var raw = new MemoryStream())
        {
            using (var zlib = new ZLibStream(raw, CompressionLevel.Fastest, leaveOpen: true))
            {
                var stride = image.Width * image.Channels;
                for (var y = 0; y < image.Height; y++)
                {
                    zlib.WriteByte(0);
                    zlib.Write(image.Pixels, y * stride, stride);
                }
            }
            WriteChunk(output, "IDAT", raw.ToArray());
        }
        WriteChunk(output, "IEND", []);
        return output.ToArray();
    }

    private static void WriteChunk(Stream output, string type, byte[] data)
    {
        var typeBytes = Encoding.ASCII.GetBytes(type);
        Span<byte> length = stackalloc byte[4];
        BinaryPrimitives.WriteInt32BigEndian(length, data.Length);
        output.Write(length);
        output.Write(typeBytes);
        output.Write(data);
        var crc = Crc32(typeBytes.Concat(data).ToArray());
        BinaryPrimitives.WriteUInt32BigEndian(length, crc);
        output.Write(length);
    }

    public static uint Crc32(byte[] bytes)
    {
        var crc = 0xFFFFFFFFu;
        foreach (var b in bytes)
        {
            crc ^= b;
            for (var k = 0; k < 8; k++) crc = (crc & 1) != 0 ? (crc >> 1) ^ 0xEDB88320u : crc >> 1;
        }
        return ~crc;
    }

    /// <summary>A w x h image whose pixels are a deterministic function of (seed, position).</summary>
    public static RawImage Pattern(int width, int height, int channels, int seed)
    {
        var pixels = new byte[width * height * channels];
        for (var i = 0; i < pixels.Length; i++) pixels[i] = (byte)(seed * 31 + i * 7);
        return new RawImage(width, height, channels, pixels);
    }

    public static void WritePng(string path, RawImage image)
    {
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        File.WriteAllBytes(path, EncodePng(image));
    }

    public static byte[] Gzip(byte[] data)
    {
        using var output = new MemoryStream();
        using (var gzip = new GZipStream(output, CompressionLevel.Fastest, leaveOpen: true)) gzip.Write(data);
        return output.ToArray();
    }

    /// <summary>IDX image file: magic 0x803, count, rows, cols (big-endian), then the pixels.</summary>
    public static byte[] IdxImages(int count, int rows, int cols, Func<int, int, byte> pixel)
    {
        var data = new byte[16 + count * rows * cols];
        BinaryPrimitives.WriteInt32BigEndian(data, 0x803);
        BinaryPrimitives.WriteInt32BigEndian(data.AsSpan(4), count);
        BinaryPrimitives.WriteInt32BigEndian(data.AsSpan(8), rows);
        BinaryPrimitives.WriteInt32BigEndian(data.AsSpan(12), cols);
        for (var i = 0; i < count; i++)
            for (var p = 0; p < rows * cols; p++) data[16 + i * rows * cols + p] = pixel(i, p);
        return data;
    }

    /// <summary>IDX label file: magic 0x801, count, then one byte per label.</summary>
    public static byte[] IdxLabels(params byte[] labels)
    {
        var data = new byte[8 + labels.Length];
        BinaryPrimitives.WriteInt32BigEndian(data, 0x801);
        BinaryPrimitives.WriteInt32BigEndian(data.AsSpan(4), labels.Length);
        labels.CopyTo(data, 8);
        return data;
    }

    public static string TempFolder(string prefix) => Directory.CreateTempSubdirectory(prefix).FullName;
}
