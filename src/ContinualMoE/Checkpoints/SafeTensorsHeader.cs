using System.Text.Json;
using TorchSharp;

namespace ContinualMoE.Checkpoints;

/// <summary>
/// The parsed and validated JSON header of a safetensors file. Validation follows the reference implementation:
/// every tensor's byte range must match its dtype and shape, and the ranges must tile the data buffer exactly
/// (no overlaps, no holes, nothing missing at the end), so a file that passes can be read without further checks.
/// </summary>
internal sealed class SafeTensorsHeader
{
    /// <summary>Headers above this size are rejected, as in the reference implementation, before allocating for them.</summary>
    public const long MaxHeaderBytes = 100L * 1024 * 1024;

    public sealed record Entry(string Name, torch.ScalarType Type, long[] Shape, long Begin, long End);

    /// <summary>Entries in the order of their data in the file.</summary>
    public IReadOnlyList<Entry> Entries { get; }
    public Dictionary<string, string> Metadata { get; }
    /// <summary>File offset of the first byte of the data buffer (8 + header length).</summary>
    public long DataStart { get; }

    private SafeTensorsHeader(IReadOnlyList<Entry> entries, Dictionary<string, string> metadata, long dataStart)
    {
        Entries = entries;
        Metadata = metadata;
        DataStart = dataStart;
    }

    /// <summary>Reads and validates the header; the stream is left positioned at the start of the data buffer.</summary>
    public static SafeTensorsHeader Read(Stream stream, string path)
    {
        if (!BitConverter.IsLittleEndian)
            throw ContinualMoEException.ForFile(path, "safetensors files can only be read on little-endian machines");
        var fileLength = stream.Length;
        if (fileLength < 8)
            throw ContinualMoEException.ForFile(path, $"not a safetensors file: {fileLength} bytes, shorter than the 8-byte header length");

        Span<byte> lengthBytes = stackalloc byte[8];
        stream.ReadExactly(lengthBytes);
        var headerLength = BitConverter.ToUInt64(lengthBytes);
        if (headerLength > (ulong)(fileLength - 8))
            throw ContinualMoEException.ForFile(path,
                $"safetensors header length {headerLength} is larger than the rest of the file ({fileLength - 8} bytes): truncated or not a safetensors file");
        if (headerLength > MaxHeaderBytes)
            throw ContinualMoEException.ForFile(path, $"safetensors header length {headerLength} exceeds the {MaxHeaderBytes}-byte limit");

        var json = new byte[headerLength];
        stream.ReadExactly(json);
        var dataStart = 8 + (long)headerLength;
        var bufferLength = fileLength - dataStart;

        JsonDocument document;
        try
        {
            document = JsonDocument.Parse(json);
        }
        catch (JsonException e)
        {
            throw ContinualMoEException.ForFile(path, $"safetensors header is not valid JSON: {e.Message}", e);
        }

        using (document)
        {
            if (document.RootElement.ValueKind != JsonValueKind.Object)
                throw ContinualMoEException.ForFile(path, "safetensors header is not a JSON object");

            var entries = new List<Entry>();
            var metadata = new Dictionary<string, string>();
            var names = new HashSet<string>(StringComparer.Ordinal);
            foreach (var property in document.RootElement.EnumerateObject())
            {
                if (!names.Add(property.Name))
                    throw ContinualMoEException.ForFile(path, $"safetensors header names '{property.Name}' twice");
                if (property.Name == "__metadata__")
                    ReadMetadata(property.Value, metadata, path);
                else
                    entries.Add(ReadEntry(property.Name, property.Value, path));
            }

            entries.Sort((a, b) => a.Begin != b.Begin ? a.Begin.CompareTo(b.Begin) : a.End.CompareTo(b.End));
            CheckCoverage(entries, bufferLength, path);
            stream.Position = dataStart;
            return new SafeTensorsHeader(entries, metadata, dataStart);
        }
    }

    private static void ReadMetadata(JsonElement value, Dictionary<string, string> metadata, string path)
    {
        if (value.ValueKind == JsonValueKind.Null) return;
        if (value.ValueKind != JsonValueKind.Object)
            throw ContinualMoEException.ForFile(path, "safetensors __metadata__ must be an object of strings");
        foreach (var item in value.EnumerateObject())
        {
            if (item.Value.ValueKind != JsonValueKind.String)
                throw ContinualMoEException.ForFile(path, $"safetensors __metadata__ value for '{item.Name}' is not a string");
            metadata[item.Name] = item.Value.GetString()!;
        }
    }

    private static Entry ReadEntry(string name, JsonElement value, string path)
    {
        ContinualMoEException Bad(string problem) => ContinualMoEException.ForFile(path, $"safetensors tensor '{name}': {problem}");

        if (value.ValueKind != JsonValueKind.Object) throw Bad("header entry is not an object");
        if (!value.TryGetProperty("dtype", out var dtypeElement) || dtypeElement.ValueKind != JsonValueKind.String)
            throw Bad("missing or non-string \"dtype\"");
        var dtypeName = dtypeElement.GetString()!;
        if (!SafeTensorsDType.TryParse(dtypeName, out var type, out var elementSize))
            throw Bad($"unsupported dtype '{dtypeName}' (supported: {SafeTensorsDType.SupportedNames})");

        if (!value.TryGetProperty("shape", out var shapeElement) || shapeElement.ValueKind != JsonValueKind.Array)
            throw Bad("missing or non-array \"shape\"");
        var shape = new long[shapeElement.GetArrayLength()];
        var i = 0;
        foreach (var dim in shapeElement.EnumerateArray())
        {
            if (dim.ValueKind != JsonValueKind.Number || !dim.TryGetInt64(out var d) || d < 0)
                throw Bad($"shape {shapeElement.GetRawText()} must hold non-negative integers");
            shape[i++] = d;
        }

        if (!value.TryGetProperty("data_offsets", out var offsets) || offsets.ValueKind != JsonValueKind.Array || offsets.GetArrayLength() != 2)
            throw Bad("missing \"data_offsets\" or it is not [begin, end]");
        if (offsets[0].ValueKind != JsonValueKind.Number || offsets[1].ValueKind != JsonValueKind.Number ||
            !offsets[0].TryGetInt64(out var begin) || !offsets[1].TryGetInt64(out var end) || begin < 0 || end < begin)
            throw Bad($"data_offsets {offsets.GetRawText()} are out of range (need 0 <= begin <= end)");

        long byteSize;
        try
        {
            byteSize = checked(shape.Aggregate(1L, (acc, d) => acc * d) * elementSize);
        }
        catch (OverflowException)
        {
            throw Bad($"shape [{string.Join(", ", shape)}] is too large");
        }
        if (byteSize != end - begin)
            throw Bad($"shape [{string.Join(", ", shape)}] of {dtypeName} needs {byteSize} bytes but data_offsets [{begin}, {end}] span {end - begin}");
        return new Entry(name, type, shape, begin, end);
    }

    /// <summary>The format requires the sorted byte ranges to cover [0, buffer length) exactly once.</summary>
    private static void CheckCoverage(List<Entry> sorted, long bufferLength, string path)
    {
        long covered = 0;
        Entry? previous = null;
        foreach (var entry in sorted)
        {
            if (entry.Begin < covered)
                throw ContinualMoEException.ForFile(path,
                    $"safetensors tensors '{previous!.Name}' [{previous.Begin}, {previous.End}] and '{entry.Name}' [{entry.Begin}, {entry.End}] overlap");
            if (entry.Begin > covered)
                throw ContinualMoEException.ForFile(path,
                    $"safetensors data bytes [{covered}, {entry.Begin}) before tensor '{entry.Name}' belong to no tensor (ranges must be contiguous)");
            if (entry.End > bufferLength)
                throw ContinualMoEException.ForFile(path,
                    $"file is truncated: tensor '{entry.Name}' data_offsets [{entry.Begin}, {entry.End}] reach past the {bufferLength} bytes of data after the header");
            covered = entry.End;
            previous = entry;
        }
        if (covered != bufferLength)
            throw ContinualMoEException.ForFile(path,
                $"safetensors data buffer has {bufferLength - covered} trailing bytes after offset {covered} that belong to no tensor");
    }
}
