using System.Text;
using System.Text.RegularExpressions;
using TorchSharp;
using static TorchSharp.torch;

namespace ContinualMoE.Checkpoints;

/// <summary>
/// Reads one NumPy <c>.npy</c> array (format versions 1.0, 2.0 and 3.0) into a CPU tensor.
/// Fortran-ordered arrays are accepted: their bytes are a C-order array of the reversed shape, so they are read
/// as such and the dimensions permuted back (one extra copy, only for such arrays).
/// </summary>
internal static partial class NpyReader
{
    private static readonly byte[] Magic = { 0x93, (byte)'N', (byte)'U', (byte)'M', (byte)'P', (byte)'Y' };

    private static readonly Dictionary<string, ScalarType> DTypes = new()
    {
        ["<f8"] = ScalarType.Float64, ["<f4"] = ScalarType.Float32, ["<f2"] = ScalarType.Float16,
        ["<i8"] = ScalarType.Int64, ["<i4"] = ScalarType.Int32, ["<i2"] = ScalarType.Int16,
        ["|i1"] = ScalarType.Int8, ["|u1"] = ScalarType.Byte, ["|b1"] = ScalarType.Bool,
    };

    /// <param name="where">"file: entry", used to prefix errors.</param>
    public static Tensor Read(Stream stream, string where)
    {
        ContinualMoEException Bad(string problem, Exception? inner = null) => new($"{where}: {problem}", inner);

        if (!BitConverter.IsLittleEndian) throw Bad(".npy arrays can only be read on little-endian machines");
        var preamble = new byte[8];
        if (!TryReadExactly(stream, preamble) || !preamble.AsSpan(0, 6).SequenceEqual(Magic))
            throw Bad("not a .npy array (bad magic)");
        int major = preamble[6], minor = preamble[7];
        if (major is < 1 or > 3 || minor != 0)
            throw Bad($"unsupported .npy format version {major}.{minor} (supported: 1.0, 2.0, 3.0)");

        var lengthBytes = new byte[major == 1 ? 2 : 4];
        if (!TryReadExactly(stream, lengthBytes)) throw Bad("truncated .npy header");
        var headerLength = major == 1 ? BitConverter.ToUInt16(lengthBytes) : BitConverter.ToUInt32(lengthBytes);
        if (headerLength > 1 << 20) throw Bad($".npy header length {headerLength} is implausibly large");
        var headerBytes = new byte[headerLength];
        if (!TryReadExactly(stream, headerBytes)) throw Bad("truncated .npy header");
        var header = (major == 3 ? Encoding.UTF8 : Encoding.Latin1).GetString(headerBytes);

        var descr = DescrPattern().Match(header);
        var fortran = FortranPattern().Match(header);
        var shapeMatch = ShapePattern().Match(header);
        if (!descr.Success || !fortran.Success || !shapeMatch.Success)
            throw Bad($"cannot parse .npy header {header.Trim()}");
        if (!DTypes.TryGetValue(descr.Groups[1].Value, out var dtype))
            throw Bad($"unsupported .npy dtype '{descr.Groups[1].Value}' (supported: {string.Join(", ", DTypes.Keys)})");

        var shape = new List<long>();
        foreach (var part in shapeMatch.Groups[1].Value.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries))
        {
            // Python 2 era files may write dimensions as "3L".
            if (!long.TryParse(part.TrimEnd('L'), out var d) || d < 0) throw Bad($"bad .npy shape ({shapeMatch.Groups[1].Value})");
            shape.Add(d);
        }

        var isFortran = fortran.Groups[1].Value == "True" && shape.Count > 1;
        var storedShape = isFortran ? Enumerable.Reverse(shape).ToArray() : shape.ToArray();
        var result = empty(storedShape, dtype, CPU);
        try
        {
            var byteCount = result.numel() * result.ElementSize;
            if (byteCount > int.MaxValue) throw Bad($"array of {byteCount} bytes is over the 2 GiB limit");
            if (byteCount > 0 && !TryReadExactly(stream, result.bytes))
                throw Bad($"truncated .npy data: expected {byteCount} bytes for shape ({string.Join(", ", shape)})");
            if (!isFortran) return result;
            using (result)
            {
                var reversed = Enumerable.Range(0, shape.Count).Reverse().Select(i => (long)i).ToArray();
                return result.permute(reversed).contiguous();
            }
        }
        catch
        {
            if (!result.IsInvalid) result.Dispose();
            throw;
        }
    }

    private static bool TryReadExactly(Stream stream, Span<byte> buffer)
    {
        try
        {
            stream.ReadExactly(buffer);
            return true;
        }
        catch (EndOfStreamException)
        {
            return false;
        }
    }

    [GeneratedRegex(@"['""]descr['""]\s*:\s*['""]([^'""]*)['""]")]
    private static partial Regex DescrPattern();

    [GeneratedRegex(@"['""]fortran_order['""]\s*:\s*(True|False)")]
    private static partial Regex FortranPattern();

    [GeneratedRegex(@"['""]shape['""]\s*:\s*\(([^)]*)\)")]
    private static partial Regex ShapePattern();
}
