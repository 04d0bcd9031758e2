using System.Text;
using ContinualMoE.Checkpoints;
using TorchSharp;
using static TorchSharp.torch;

namespace ContinualMoE.Tests.Checkpoints;

public class SafeTensorsFileTests
{
    /// <summary>Builds a safetensors file byte by byte, independent of <see cref="SafeTensorsFile.Write"/>.</summary>
    internal static byte[] RawFile(string headerJson, byte[] data, long? declaredHeaderLength = null)
    {
        var header = Encoding.UTF8.GetBytes(headerJson);
        var bytes = new List<byte>();
        bytes.AddRange(BitConverter.GetBytes((ulong)(declaredHeaderLength ?? header.Length)));
        bytes.AddRange(header);
        bytes.AddRange(data);
        return bytes.ToArray();
    }

    [Fact]
    public void ReadsHandCraftedFile()
    {
        using var dir = new TempDirectory();
        var path = dir.File("hand.safetensors");
        // "b" is stored first in the buffer although named second: order of data must not depend on header order.
        var header = "{\"__metadata__\":{\"format\":\"pt\"}," +
                     "\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}," +
                     "\"b\":{\"dtype\":\"BF16\",\"shape\":[1,2],\"data_offsets\":[0,4]}," +
                     "\"c\":{\"dtype\":\"I64\",\"shape\":[],\"data_offsets\":[12,20]}," +
                     "\"d\":{\"dtype\":\"BOOL\",\"shape\":[0,3],\"data_offsets\":[20,20]}}";
        var data = new List<byte>();
        data.AddRange(new byte[] { 0xC0, 0x3F, 0x00, 0xC0 });               // bf16 1.5, -2.0
        data.AddRange(BitConverter.GetBytes(0.25f));
        data.AddRange(BitConverter.GetBytes(-3.5f));
        data.AddRange(BitConverter.GetBytes(-7L));
        File.WriteAllBytes(path, RawFile(header, data.ToArray()));

        var tensors = SafeTensorsFile.Read(path, out var metadata);

        Assert.Equal("pt", metadata["format"]);
        Assert.Equal(new[] { "a", "b", "c", "d" }, tensors.Keys.OrderBy(k => k));
        Assert.Equal(ScalarType.Float32, tensors["a"].dtype);
        Assert.Equal(new[] { 0.25f, -3.5f }, tensors["a"].data<float>().ToArray());
        Assert.Equal(ScalarType.BFloat16, tensors["b"].dtype);
        Assert.Equal(new long[] { 1, 2 }, tensors["b"].shape);
        Assert.Equal(new[] { 1.5f, -2.0f }, tensors["b"].to(ScalarType.Float32).flatten().data<float>().ToArray());
        Assert.Empty(tensors["c"].shape);
        Assert.Equal(-7L, tensors["c"].item<long>());
        Assert.Equal(new long[] { 0, 3 }, tensors["d"].shape);
        Assert.Equal(ScalarType.Bool, tensors["d"].dtype);
    }

    public static IEnumerable<object[]> AllDTypes() => new[]
    {
        ScalarType.Float64, ScalarType.Float32, ScalarType.Float16, ScalarType.BFloat16, ScalarType.Int64,
        ScalarType.Int32, ScalarType.Int16, ScalarType.Int8, ScalarType.Byte, ScalarType.Bool,
    }.Select(t => new object[] { t });

    [Theory]
    [MemberData(nameof(AllDTypes))]
    public void RoundTripsEveryDTypeExactly(ScalarType dtype)
    {
        using var dir = new TempDirectory();
        var path = dir.File("round.safetensors");
        // Small integers and dyadic fractions are exact in every dtype (bf16 keeps 8 significant bits).
        var values = dtype switch
        {
            ScalarType.Bool => tensor(new[] { true, false, true, true, false, false }),
            ScalarType.Byte => tensor(new byte[] { 0, 1, 127, 128, 200, 255 }),
            ScalarType.Int8 => tensor(new sbyte[] { -128, -1, 0, 1, 64, 127 }),
            ScalarType.Float16 or ScalarType.BFloat16 or ScalarType.Float32 or ScalarType.Float64 =>
                tensor(new double[] { -2.5, 0.15625, 1.5, -0.0, 96, 1e-2 }).to(dtype),
            _ => tensor(new long[] { -3, -1, 0, 7, 1000, 12345 }).to(dtype),
        };
        var original = values.reshape(2, 3);
        var transposed = original.t(); // a non-contiguous tensor must be written in its logical order
        SafeTensorsFile.Write(path, new Dictionary<string, Tensor> { ["x"] = original, ["x_t"] = transposed },
            new Dictionary<string, string> { ["k"] = "v" });

        var read = SafeTensorsFile.Read(path, out var metadata);

        Assert.Equal("v", metadata["k"]);
        Assert.Equal(dtype, read["x"].dtype);
        Assert.Equal(original.shape, read["x"].shape);
        Assert.True(read["x"].equal(original).all().item<bool>(), $"{dtype} values differ");
        Assert.True(read["x_t"].equal(transposed).all().item<bool>(), $"{dtype} transposed values differ");
        // The F16/BF16 bit patterns must survive unchanged (equal() would hide a sign-of-zero change).
        Assert.Equal(original.contiguous().bytes.ToArray(), read["x"].bytes.ToArray());
    }

    [Fact]
    public void WriterFollowsTheFormatLayout()
    {
        using var dir = new TempDirectory();
        var path = dir.File("layout.safetensors");
        SafeTensorsFile.Write(path, new Dictionary<string, Tensor>
        {
            ["zeta"] = tensor(new float[] { 1, 2 }),
            ["alpha"] = tensor(new short[] { 5 }),
        });

        var bytes = File.ReadAllBytes(path);
        var headerLength = (long)BitConverter.ToUInt64(bytes, 0);
        Assert.Equal(0, headerLength % 8);
        var header = Encoding.UTF8.GetString(bytes, 8, (int)headerLength);
        Assert.Contains("\"alpha\":{\"dtype\":\"I16\",\"shape\":[1],\"data_offsets\":[0,2]}", header);
        Assert.Contains("\"zeta\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[2,10]}", header);
        Assert.Equal(8 + headerLength + 10, bytes.Length);
        Assert.Equal(BitConverter.GetBytes((short)5), bytes[(int)(8 + headerLength)..(int)(8 + headerLength + 2)]);
        Assert.Empty(Directory.GetFiles(dir.Path, "*.tmp"));
    }

    public static IEnumerable<object[]> CorruptFiles()
    {
        var ok = "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}";
        var eight = new byte[8];
        object[] Case(string label, byte[] file) => new object[] { label, file };
        yield return Case("shorter than 8 bytes", new byte[] { 1, 2, 3 });
        yield return Case("header length beyond file", RawFile(ok, eight, declaredHeaderLength: 10_000));
        yield return Case("invalid JSON", RawFile("{\"a\":{\"dtype\":", eight));
        yield return Case("not an object", RawFile("[1,2]", eight));
        yield return Case("unknown dtype", RawFile("{\"a\":{\"dtype\":\"F8_E4M3\",\"shape\":[2],\"data_offsets\":[0,8]}}", eight));
        yield return Case("size mismatch", RawFile("{\"a\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", eight));
        yield return Case("negative shape", RawFile("{\"a\":{\"dtype\":\"F32\",\"shape\":[-2],\"data_offsets\":[0,8]}}", eight));
        yield return Case("offsets reversed", RawFile("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,0]}}", eight));
        yield return Case("offsets not numbers", RawFile("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[\"0\",8]}}", eight));
        yield return Case("offsets out of range", RawFile("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[100,108]}}", eight));
        yield return Case("overlap", RawFile(
            "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", eight));
        yield return Case("hole", RawFile(
            "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,12]}}", new byte[12]));
        yield return Case("trailing bytes", RawFile(ok, new byte[12]));
        yield return Case("truncated data", RawFile(ok, new byte[5]));
        yield return Case("metadata not strings", RawFile("{\"__metadata__\":{\"n\":1}," + ok[1..], eight));
    }

    [Theory]
    [MemberData(nameof(CorruptFiles))]
    public void CorruptFileGivesErrorNamingTheFile(string label, byte[] file)
    {
        using var dir = new TempDirectory();
        var path = dir.File("broken-" + label.Replace(' ', '_') + ".safetensors");
        File.WriteAllBytes(path, file);

        var error = Assert.Throws<ContinualMoEException>(() => SafeTensorsFile.Read(path));

        Assert.Contains(Path.GetFileName(path), error.Message);
        Assert.DoesNotContain('\n', error.Message);
    }

    [Fact]
    public void MissingFileIsReported()
    {
        var error = Assert.Throws<ContinualMoEException>(() => SafeTensorsFile.Read("/nonexistent/x.safetensors"));
        Assert.Equal("/nonexistent/x.safetensors: file not found", error.Message);
    }
}
